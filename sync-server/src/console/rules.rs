//! 规则: a district administrator edits the district's rules (every invalid
//! field named at once, by the core's `DistrictRules::problems`) and
//! publishes a new checklist version from an edited copy of the newest
//! (versions never change once published; phones keep inspecting against the
//! version they started with). Both are written by the core's operations,
//! as an administrator's phone would write them.

use std::sync::Arc;

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use menqian_core::{ChecklistTemplate, DistrictRules, Role};
use serde::Deserialize;

use super::web::{error_page, member, render, signed_form};
use crate::store::{StoreError, User};
use crate::sync::Station;

/// The largest rules or checklist form (a checklist in Chinese, percent
/// encoded, runs to tens of kilobytes).
pub const MAX_EDIT_BYTES: usize = 256 * 1024;

fn is_admin(user: &User) -> bool {
    user.role == Role::Admin
}

struct Version {
    id: String,
    version: u32,
    name: String,
    newest: bool,
}

#[derive(Template)]
#[template(path = "console/rules.html")]
struct RulesPage<'a> {
    me: &'a str,
    csrf: &'a str,
    rules: String,
    problems: Vec<(String, String)>,
    notice: Option<String>,
    versions: Vec<Version>,
    /// The checklist being edited: its id and JSON.
    editing: Option<(String, String)>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct RulesQuery {
    /// A checklist to edit a copy of.
    #[serde(default)]
    checklist: String,
}

fn pretty<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

#[allow(clippy::too_many_arguments)]
async fn show(
    station: &Arc<Station>,
    me: &User,
    csrf: &str,
    status: StatusCode,
    rules_text: Option<String>,
    problems: Vec<(String, String)>,
    notice: Option<String>,
    editing: Option<(String, Option<String>)>,
) -> Response {
    let wanted = editing.as_ref().map(|(id, _)| id.clone());
    let found = station
        .read(move |r| {
            let docs = r.documents();
            let rules = docs.rules().map_err(StoreError::from)?;
            let templates = docs.templates().map_err(StoreError::from)?;
            let copy = match wanted {
                Some(id) => docs.template(&id, None).ok(),
                None => None,
            };
            Ok((rules, templates, copy))
        })
        .await;
    let (rules, templates, copy) = match found {
        Ok(found) => found,
        Err(e) => return error_page(&e),
    };
    let versions = templates
        .iter()
        .map(|(id, version, name)| Version {
            newest: !templates.iter().any(|(i, v, _)| i == id && v > version),
            id: id.clone(),
            version: *version,
            name: name.clone(),
        })
        .collect();
    let editing = match (editing, copy) {
        (Some((id, Some(text))), _) => Some((id, text)),
        (Some((id, None)), Some(t)) => Some((id, pretty(&t))),
        _ => None,
    };
    render(
        status,
        &RulesPage {
            me: &me.name,
            csrf,
            rules: rules_text.unwrap_or_else(|| pretty(&rules)),
            problems,
            notice,
            versions,
            editing,
        },
    )
}

/// The page again with what was sent and why it was not published.
async fn refused(
    station: &Arc<Station>,
    me: &User,
    csrf: &str,
    rules_text: Option<String>,
    problems: Vec<(String, String)>,
    editing: Option<(String, Option<String>)>,
) -> Response {
    let status = StatusCode::BAD_REQUEST;
    show(
        station, me, csrf, status, rules_text, problems, None, editing,
    )
    .await
}

pub(super) async fn page(
    State(station): State<Arc<Station>>,
    headers: HeaderMap,
    query: Result<Query<RulesQuery>, QueryRejection>,
) -> Response {
    let q = query.map(|Query(q)| q).unwrap_or_default();
    let (me, csrf) = match member(&station, &headers, is_admin).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let editing = (!q.checklist.trim().is_empty()).then(|| (q.checklist.trim().to_string(), None));
    show(
        &station,
        &me,
        &csrf,
        StatusCode::OK,
        None,
        vec![],
        None,
        editing,
    )
    .await
}

#[derive(Debug, Deserialize)]
pub(super) struct RulesForm {
    rules: String,
}

/// A JSON text's parse error as a problem: where it is and why.
fn parse_problem(e: &serde_json::Error) -> (String, String) {
    (
        format!("第 {} 行第 {} 列", e.line(), e.column()),
        e.to_string(),
    )
}

pub(super) async fn save_rules(State(station): State<Arc<Station>>, request: Request) -> Response {
    let (me, csrf, form) = match signed_form::<RulesForm>(&station, request, is_admin).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let rules: DistrictRules = match serde_json::from_str(&form.rules) {
        Ok(rules) => rules,
        Err(e) => {
            let problems = vec![parse_problem(&e)];
            return refused(&station, &me, &csrf, Some(form.rules), problems, None).await;
        }
    };
    let problems = rules.problems();
    if !problems.is_empty() {
        return refused(&station, &me, &csrf, Some(form.rules), problems, None).await;
    }
    match station
        .write(move |s| {
            Ok(s.documents()
                .publish_rules(rules)
                .map_err(StoreError::from)?)
        })
        .await
    {
        Ok(()) => {
            tracing::info!(by = %me.id, "district rules published in the console");
            let notice = Some("规则已发布；各手机下次同步后按新规则计算".to_string());
            show(
                &station,
                &me,
                &csrf,
                StatusCode::OK,
                None,
                vec![],
                notice,
                None,
            )
            .await
        }
        Err(e) => error_page(&e),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct ChecklistForm {
    checklist: String,
    template: String,
}

pub(super) async fn publish_checklist(
    State(station): State<Arc<Station>>,
    request: Request,
) -> Response {
    let (me, csrf, form) = match signed_form::<ChecklistForm>(&station, request, is_admin).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let id = form.checklist.trim().to_string();
    let editing = Some((id.clone(), Some(form.template.clone())));
    let mut template: ChecklistTemplate = match serde_json::from_str(&form.template) {
        Ok(t) => t,
        Err(e) => {
            let problems = vec![parse_problem(&e)];
            return refused(&station, &me, &csrf, None, problems, editing).await;
        }
    };
    if template.id != id {
        let problems = vec![(
            "id".to_string(),
            format!("编辑的是 {id}，不能改为 {}", template.id),
        )];
        return refused(&station, &me, &csrf, None, problems, editing).await;
    }
    let published = station
        .write(move |s| {
            let docs = s.documents();
            // A copy is published as the next version of its checklist.
            let newest = docs
                .templates()
                .map_err(StoreError::from)?
                .into_iter()
                .filter(|(i, _, _)| *i == template.id)
                .map(|(_, v, _)| v)
                .max()
                .unwrap_or(0);
            template.version = newest + 1;
            let version = template.version;
            Ok(docs.import_templates(vec![template]).map(|_| version))
        })
        .await;
    match published {
        Err(e) => error_page(&e),
        Ok(Err(e)) => {
            let problems = vec![match e {
                menqian_core::Error::InvalidInput { field, reason } => (field, reason),
                other => ("checklist".to_string(), other.to_string()),
            }];
            refused(&station, &me, &csrf, None, problems, editing).await
        }
        Ok(Ok(version)) => {
            tracing::info!(by = %me.id, checklist = %id, version, "checklist published in the console");
            let notice = Some(format!("已发布 {id} 第 {version} 版；新开始的检查使用新版"));
            show(
                &station,
                &me,
                &csrf,
                StatusCode::OK,
                None,
                vec![],
                notice,
                None,
            )
            .await
        }
    }
}
