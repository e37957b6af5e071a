//! 台账与公示牌 (administrators): the district's ledger uploaded, checked
//! and previewed with every problem by row and column, then imported on
//! confirmation; the registry exported to XLSX; signboards printed to PDF.
//! The import and the printing run as jobs the page follows (done of total,
//! cancel); a cancelled import writes nothing, a cancelled print leaves no
//! file.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use askama::Template;
use axum::extract::{Multipart, Path as UrlPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use menqian_core::Role;
use menqian_core::onboard::{Datum, LedgerOptions, LedgerPlan};
use serde::Deserialize;

use super::web::{error_page, member, render, same as same_token, signed_form};
use crate::registry::{self, Charset};
use crate::signboards::{self, Layout};
use crate::store::{StoreError, User};
use crate::sync::{ApiError, Station};

/// The largest ledger file the console takes.
pub const MAX_UPLOAD_BYTES: usize = 50 * 1024 * 1024;
/// Problems listed on the preview (all are counted).
const SHOWN_PROBLEMS: usize = 300;
/// Uploads and finished jobs kept (the oldest go first).
const KEPT: usize = 8;

fn admin(user: &User) -> bool {
    user.role == Role::Admin
}

/// A long piece of work the console follows.
#[derive(Debug)]
pub struct Job {
    owner: String,
    label: &'static str,
    done: AtomicU64,
    total: AtomicU64,
    cancel: AtomicBool,
    outcome: Mutex<Option<Result<Outcome, String>>>,
}

#[derive(Debug)]
enum Outcome {
    Imported(menqian_core::ImportReport),
    /// A file to download, and its name.
    File(tempfile::TempPath, &'static str),
}

/// Ledger files uploaded and checked, waiting for confirmation; jobs.
#[derive(Debug, Default)]
pub struct Jobs {
    uploads: Mutex<Vec<(String, Upload)>>,
    jobs: Mutex<Vec<(String, Arc<Job>)>>,
}

#[derive(Debug)]
struct Upload {
    owner: String,
    path: tempfile::TempPath,
    options: LedgerOptions,
    /// The CSV character set the preview read it with.
    charset: Charset,
}

fn keep<T>(list: &mut Vec<(String, T)>, id: String, item: T) {
    if list.len() >= KEPT {
        list.remove(0);
    }
    list.push((id, item));
}

impl Job {
    fn new(owner: &str, label: &'static str) -> Arc<Job> {
        Arc::new(Job {
            owner: owner.to_string(),
            label,
            done: AtomicU64::new(0),
            total: AtomicU64::new(0),
            cancel: AtomicBool::new(false),
            outcome: Mutex::new(None),
        })
    }

    /// A progress callback for the core and the printer.
    fn progress(self: &Arc<Self>) -> impl FnMut(u64, u64) -> bool + use<> {
        let job = self.clone();
        move |done, total| {
            job.done.store(done, Ordering::Relaxed);
            job.total.store(total, Ordering::Relaxed);
            !job.cancel.load(Ordering::Relaxed)
        }
    }

    fn finish(&self, outcome: Result<Outcome, String>) {
        *self.outcome.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
    }
}

#[derive(Template)]
#[template(path = "console/onboard.html")]
struct OnboardPage<'a> {
    me: &'a str,
    csrf: &'a str,
    error: Option<String>,
    subdistricts: Vec<String>,
}

pub(super) async fn page(State(station): State<Arc<Station>>, headers: HeaderMap) -> Response {
    let (user, csrf) = match member(&station, &headers, admin).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let subdistricts = station
        .read(|r| {
            Ok(r.documents()
                .places_in(&menqian_core::Area::District)
                .map_err(StoreError::from)?
                .0)
        })
        .await
        .unwrap_or_default();
    render(
        StatusCode::OK,
        &OnboardPage {
            me: &user.name,
            csrf: &csrf,
            error: None,
            subdistricts,
        },
    )
}

fn bad(message: impl Into<String>) -> Response {
    error_page(&ApiError::new(
        StatusCode::BAD_REQUEST,
        "bad_ledger",
        message.into(),
    ))
}

struct ProblemRow {
    text: String,
    refused: bool,
}

#[derive(Template)]
#[template(path = "console/onboard_preview.html")]
struct PreviewPage<'a> {
    me: &'a str,
    csrf: &'a str,
    upload: String,
    name: String,
    read_as: String,
    plan: &'a LedgerPlan,
    refused: usize,
    warned: usize,
    problems: Vec<ProblemRow>,
    unused: String,
}

/// The upload: the session and role from the cookie first, then the parts
/// read in order (the CSRF token before the file), the file written to a
/// temporary file as it arrives, at most [`MAX_UPLOAD_BYTES`].
pub(super) async fn preview(State(station): State<Arc<Station>>, request: Request) -> Response {
    let (user, csrf) = match member(&station, request.headers(), admin).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let mut multipart =
        match <Multipart as axum::extract::FromRequest<()>>::from_request(request, &()).await {
            Ok(m) => m,
            Err(e) => return bad(format!("上传无效：{}", e.body_text())),
        };
    let mut fields: HashMap<String, String> = HashMap::new();
    let mut file: Option<(tempfile::NamedTempFile, String)> = None;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                return bad(format!(
                    "上传中断或过大（上限 {} MB）：{e}",
                    MAX_UPLOAD_BYTES >> 20
                ));
            }
        };
        let name = field.name().unwrap_or("").to_string();
        if name == "file" {
            if fields.get("csrf").is_none_or(|c| !same_token(c, &csrf)) {
                return error_page(&ApiError::new(
                    StatusCode::FORBIDDEN,
                    "bad_csrf",
                    "表单已过期，请返回重试",
                ));
            }
            let original = field.file_name().unwrap_or("ledger").to_string();
            let ext = std::path::Path::new(&original)
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or("")
                .to_ascii_lowercase();
            if !["xlsx", "xlsm", "xls", "csv", "txt"].contains(&ext.as_str()) {
                return bad("只接受 .xlsx、.xls 或 .csv 文件");
            }
            let Ok(mut tmp) = tempfile::Builder::new()
                .suffix(&format!(".{ext}"))
                .tempfile()
            else {
                return bad("无法保存上传的文件");
            };
            let mut field = field;
            let mut size = 0usize;
            loop {
                match field.chunk().await {
                    Ok(Some(bytes)) => {
                        size += bytes.len();
                        if size > MAX_UPLOAD_BYTES {
                            return bad(format!("文件超过 {} MB", MAX_UPLOAD_BYTES >> 20));
                        }
                        if std::io::Write::write_all(&mut tmp, &bytes).is_err() {
                            return bad("无法保存上传的文件");
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return bad(format!("上传中断：{e}")),
                }
            }
            file = Some((tmp, original));
        } else {
            let Ok(text) = field.text().await else {
                return bad("表单无效");
            };
            if text.len() > 1024 || fields.len() > 16 {
                return bad("表单无效");
            }
            fields.insert(name, text);
        }
    }
    if fields.get("csrf").is_none_or(|c| !same_token(c, &csrf)) {
        return error_page(&ApiError::new(
            StatusCode::FORBIDDEN,
            "bad_csrf",
            "表单已过期，请返回重试",
        ));
    }
    let Some((tmp, original)) = file else {
        return bad("请选择台账文件");
    };
    let mut options = LedgerOptions::new(menqian_core::model::period::beijing_date(Utc::now()));
    options.datum = fields
        .get("coords")
        .and_then(|c| Datum::parse(c))
        .unwrap_or_default();
    options.district = match fields
        .get("district")
        .map(|d| d.trim())
        .filter(|d| !d.is_empty())
    {
        Some(d) => match d.parse::<u32>() {
            Ok(n) if (100_000..=999_999).contains(&n) => Some(n),
            _ => return bad("区划代码是 6 位数字，例如 110106"),
        },
        None => None,
    };
    let charset = fields
        .get("encoding")
        .and_then(|c| Charset::parse(c))
        .unwrap_or_default();
    let path = tmp.into_temp_path();
    let (at, opts) = (path.to_path_buf(), options.clone());
    let checked = station
        .read(move |r| {
            let table = registry::read_table(&at, None, charset)
                .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_ledger", e))?;
            let plan = r
                .documents()
                .plan_ledger(&table.rows, &opts)
                .map_err(StoreError::from)?;
            Ok((table.read_as, plan))
        })
        .await;
    let (read_as, plan) = match checked {
        Ok(found) => found,
        Err(e) => return error_page(&e),
    };
    let upload = crate::store::new_token();
    let refused = plan.refusals().count();
    let warned = plan.warnings().count();
    let page = PreviewPage {
        me: &user.name,
        csrf: &csrf,
        upload: upload.clone(),
        name: original.clone(),
        read_as,
        plan: &plan,
        refused,
        warned,
        problems: plan
            .problems
            .iter()
            .take(SHOWN_PROBLEMS)
            .map(|p| ProblemRow {
                text: p.to_string(),
                refused: p.refused,
            })
            .collect(),
        unused: plan
            .columns
            .iter()
            .filter(|(name, f)| f.is_none() && !name.is_empty())
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join("、"),
    };
    let response = render(StatusCode::OK, &page);
    if refused == 0 {
        let mut uploads = station
            .jobs
            .uploads
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        keep(
            &mut uploads,
            upload,
            Upload {
                owner: user.id.clone(),
                path,
                options,
                charset,
            },
        );
    }
    response
}

#[derive(Debug, Deserialize)]
pub(super) struct ConfirmForm {
    upload: String,
}

/// Imports a previewed ledger as a job: read and checked again under the
/// writer (the registry may have moved since), then written in one
/// transaction.
pub(super) async fn confirm(State(station): State<Arc<Station>>, request: Request) -> Response {
    let (user, _, form) = match signed_form::<ConfirmForm>(&station, request, admin).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let upload = {
        let mut uploads = station
            .jobs
            .uploads
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match uploads
            .iter()
            .position(|(id, u)| same_token(id, &form.upload) && u.owner == user.id)
        {
            Some(k) => uploads.remove(k).1,
            None => return bad("这份台账已导入或已过期，请重新上传"),
        }
    };
    let job = Job::new(&user.id, "导入台账");
    let id = start(&station, job.clone());
    let worker = station.clone();
    tokio::spawn(async move {
        let mut progress = job.progress();
        let outcome = worker
            .write(move |w| {
                // Read again as the preview read it (the chosen encoding).
                let table = registry::read_table(&upload.path, None, upload.charset)
                    .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_ledger", e))?;
                let docs = w.documents();
                let plan = docs
                    .plan_ledger(&table.rows, &upload.options)
                    .map_err(StoreError::from)?;
                match docs.import_ledger(&plan, &mut progress) {
                    Ok(r) => Ok(Ok(r)),
                    Err(menqian_core::Error::Cancelled) => {
                        Ok(Err("已取消：未写入任何商户".to_string()))
                    }
                    Err(e) => Ok(Err(e.to_string())),
                }
            })
            .await;
        job.finish(match outcome {
            Ok(Ok(report)) => Ok(Outcome::Imported(report)),
            Ok(Err(why)) => Err(why),
            Err(e) => Err(e.message.clone()),
        });
    });
    Redirect::to(&format!("/console/job/{id}")).into_response()
}

fn start(station: &Arc<Station>, job: Arc<Job>) -> String {
    let id = crate::store::new_token();
    let mut jobs = station.jobs.jobs.lock().unwrap_or_else(|p| p.into_inner());
    keep(&mut jobs, id.clone(), job);
    id
}

fn job_of(station: &Station, id: &str, user: &User) -> Option<Arc<Job>> {
    station
        .jobs
        .jobs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .find(|(k, j)| same_token(k, id) && j.owner == user.id)
        .map(|(_, j)| j.clone())
}

#[derive(Debug, Deserialize)]
pub(super) struct PrintForm {
    #[serde(default)]
    subdistrict: String,
    #[serde(default)]
    street: String,
    #[serde(default)]
    shop: String,
    #[serde(default)]
    lanes: Option<String>,
    #[serde(default)]
    layout: String,
}

/// Prints signboards as a job on a reader.
pub(super) async fn print(State(station): State<Arc<Station>>, request: Request) -> Response {
    let (user, _, form) = match signed_form::<PrintForm>(&station, request, admin).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let layout = Layout::parse(&form.layout).unwrap_or_default();
    let clean = |s: &str| {
        let t: String = s.trim().chars().take(50).collect();
        (!t.is_empty()).then_some(t)
    };
    let (subdistrict, street) = (clean(&form.subdistrict), clean(&form.street));
    let selection = signboards::Selection {
        shop: clean(&form.shop),
        street,
        subdistrict,
        lanes: form.lanes.is_some(),
        checklist: None,
    };
    let font = match signboards::load_font(None) {
        Ok(f) => f,
        Err(e) => return bad(e),
    };
    let host = station.signboard_host.clone();
    let users = match station.read(|r| Ok(r.accounts().users()?)).await {
        Ok(u) => u,
        Err(e) => return error_page(&e),
    };
    let job = Job::new(&user.id, "打印公示牌");
    let id = start(&station, job.clone());
    let worker = station.clone();
    tokio::spawn(async move {
        let mut progress = job.progress();
        let outcome = worker
            .read(move |r| {
                let out = tempfile::Builder::new()
                    .suffix(".pdf")
                    .tempfile()
                    .map_err(|e| {
                        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "io", e.to_string())
                    })?
                    .into_temp_path();
                let printed = signboards::print(
                    r.documents(),
                    &users,
                    &selection,
                    signboards::Press {
                        font: &font,
                        layout,
                        host: &host,
                    },
                    &out,
                    &mut progress,
                );
                Ok(printed.map(|_| out))
            })
            .await;
        job.finish(match outcome {
            Ok(Ok(path)) => Ok(Outcome::File(path, "menqian-signboards.pdf")),
            Ok(Err(why)) => Err(why),
            Err(e) => Err(e.message.clone()),
        });
    });
    Redirect::to(&format!("/console/job/{id}")).into_response()
}

#[derive(Template)]
#[template(path = "console/job.html")]
struct JobPage<'a> {
    me: &'a str,
    csrf: &'a str,
    id: &'a str,
    label: &'static str,
    done: u64,
    total: u64,
    running: bool,
    error: Option<String>,
    imported: Option<menqian_core::ImportReport>,
    file: bool,
}

pub(super) async fn job(
    State(station): State<Arc<Station>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let (user, csrf) = match member(&station, &headers, admin).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let Some(job) = job_of(&station, &id, &user) else {
        return error_page(&ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "没有这项任务",
        ));
    };
    let outcome = job.outcome.lock().unwrap_or_else(|p| p.into_inner());
    let mut page = JobPage {
        me: &user.name,
        csrf: &csrf,
        id: &id,
        label: job.label,
        done: job.done.load(Ordering::Relaxed),
        total: job.total.load(Ordering::Relaxed),
        running: outcome.is_none(),
        error: None,
        imported: None,
        file: false,
    };
    match outcome.as_ref() {
        Some(Ok(Outcome::Imported(r))) => page.imported = Some(*r),
        Some(Ok(Outcome::File(..))) => page.file = true,
        Some(Err(e)) => page.error = Some(e.clone()),
        None => {}
    }
    let mut response = render(StatusCode::OK, &page);
    if page.running {
        // The page follows the job without script.
        response
            .headers_mut()
            .insert(header::REFRESH, HeaderValue::from_static("1"));
    }
    response
}

#[derive(Debug, Deserialize)]
pub(super) struct NoFields {}

pub(super) async fn cancel(
    State(station): State<Arc<Station>>,
    UrlPath(id): UrlPath<String>,
    request: Request,
) -> Response {
    let (user, _, _) = match signed_form::<NoFields>(&station, request, admin).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    if let Some(job) = job_of(&station, &id, &user) {
        job.cancel.store(true, Ordering::Relaxed);
    }
    Redirect::to(&format!("/console/job/{id}")).into_response()
}

/// A finished job's file, streamed from disk.
pub(super) async fn file(
    State(station): State<Arc<Station>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let (user, _) = match member(&station, &headers, admin).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let path: Option<(PathBuf, &'static str)> = job_of(&station, &id, &user).and_then(|job| {
        match job
            .outcome
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            Some(Ok(Outcome::File(p, name))) => Some((p.to_path_buf(), *name)),
            _ => None,
        }
    });
    let Some((path, name)) = path else {
        return error_page(&ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "没有这个文件",
        ));
    };
    super::download_file(&path, "application/pdf", name).await
}

/// The registry as XLSX, with codes, for the district's own spreadsheet.
pub(super) async fn export(State(station): State<Arc<Station>>, headers: HeaderMap) -> Response {
    if let Err(response) = member(&station, &headers, admin).await {
        return response;
    }
    let host = station.signboard_host.clone();
    let written = station
        .read(move |r| {
            let shops = r.documents().all_shops().map_err(StoreError::from)?;
            let path = tempfile::Builder::new()
                .suffix(".xlsx")
                .tempfile()
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "io", e.to_string()))?
                .into_temp_path();
            registry::export_xlsx(&shops, Datum::Wgs84, &host, &path).map_err(|e| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "export", e.to_string())
            })?;
            Ok(path)
        })
        .await;
    match written {
        Ok(path) => {
            let response = super::download_file(
                &path,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "menqian-registry.xlsx",
            )
            .await;
            drop(path);
            response
        }
        Err(e) => error_page(&e),
    }
}
