//! Shop codes and the QR payload on each public signboard (公示牌, 一店一码).
//!
//! One code serves two audiences: the payload is a URL
//! `https://<district host>/s/<code>` that a citizen's WeChat opens as a web
//! page, and that the app parses offline to open the shop's record.
//!
//! A shop code is the district's 6-digit administrative division code, a 6-digit
//! serial number and a check character computed with ISO 7064 MOD 11-2 (the
//! scheme of Chinese resident ID numbers), so a truncated or misread code is
//! caught before any lookup: `110106` `000123` `2`.

use std::fmt;

use url::Url;

/// Why a scanned payload is not a shop code of this district.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QrError {
    #[error("the code is empty")]
    Empty,
    #[error("not a link: this is not a 门前 signboard code")]
    NotALink,
    #[error("a {scheme}: link, not a 门前 signboard code (payment and app codes are not accepted)")]
    ForeignScheme { scheme: String },
    #[error("a link to {host}, which is not this district's signboard host")]
    ForeignHost { host: String },
    #[error("a link on this district's host, but not to a shop (expected /s/<code>)")]
    NotAShopLink,
    #[error("the shop code is cut short: {len} of 13 characters")]
    Truncated { len: usize },
    #[error("the shop code is malformed: {reason}")]
    Malformed { reason: String },
    #[error("the shop code fails its check character: misprinted or misread")]
    CheckFailed,
}

/// A valid shop code; construct it with [`ShopCode::parse`] or [`ShopCode::new`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShopCode(String);

impl ShopCode {
    pub const LEN: usize = 13;

    /// Builds the code for a district and serial number, adding the check character.
    pub fn new(district: u32, serial: u32) -> Result<ShopCode, QrError> {
        if !(100_000..=999_999).contains(&district) || serial > 999_999 {
            return Err(QrError::Malformed {
                reason: "district is 6 digits and serial at most 6 digits".into(),
            });
        }
        let body = format!("{district:06}{serial:06}");
        let check = check_char(&body);
        Ok(ShopCode(format!("{body}{check}")))
    }

    /// Parses a typed or scanned code: 12 digits and a check digit or `X`.
    pub fn parse(s: &str) -> Result<ShopCode, QrError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(QrError::Empty);
        }
        if let Some(bad) = s.chars().find(|c| !c.is_ascii_alphanumeric()) {
            return Err(QrError::Malformed {
                reason: format!("unexpected character {bad:?}"),
            });
        }
        let len = s.chars().count();
        if len < Self::LEN {
            return Err(QrError::Truncated { len });
        }
        if len > Self::LEN {
            return Err(QrError::Malformed {
                reason: format!("{len} characters, a code has {}", Self::LEN),
            });
        }
        let upper = s.to_ascii_uppercase();
        let (body, check) = upper.split_at(Self::LEN - 1);
        if !body.chars().all(|c| c.is_ascii_digit()) {
            return Err(QrError::Malformed {
                reason: "the first 12 characters are digits".into(),
            });
        }
        if !check.starts_with(check_char(body)) {
            return Err(QrError::CheckFailed);
        }
        Ok(ShopCode(upper))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The district's administrative division code, e.g. `110106` (丰台区).
    pub fn district(&self) -> &str {
        &self.0[..6]
    }

    /// The signboard URL for this code on `host`.
    pub fn link(&self, host: &str) -> String {
        format!("https://{host}/s/{}", self.0)
    }
}

impl fmt::Display for ShopCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// ISO 7064 MOD 11-2 over ASCII digits: weights 2^k mod 11 from the right.
fn check_char(digits: &str) -> char {
    let n = digits.len() as u32;
    let sum: u32 = digits
        .bytes()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * (2u32.pow(n - i as u32) % 11))
        .sum();
    match (12 - sum % 11) % 11 {
        10 => 'X',
        d => char::from(b'0' + d as u8),
    }
}

/// Reads a scanned payload. `hosts` are this district's signboard hosts
/// (lower-case); a link to any other host is refused as foreign.
pub fn parse_payload(payload: &str, hosts: &[String]) -> Result<ShopCode, QrError> {
    let payload = payload.trim();
    if payload.is_empty() {
        return Err(QrError::Empty);
    }
    let url = Url::parse(payload).map_err(|_| QrError::NotALink)?;
    if url.scheme() != "https" {
        return Err(QrError::ForeignScheme {
            scheme: url.scheme().to_string(),
        });
    }
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    if !hosts.iter().any(|h| h.eq_ignore_ascii_case(&host)) {
        return Err(QrError::ForeignHost { host });
    }
    // WeChat appends its own query (`?from=singlemessage`); only the path matters.
    let mut segments = url
        .path_segments()
        .ok_or(QrError::NotAShopLink)?
        .filter(|s| !s.is_empty());
    match (segments.next(), segments.next(), segments.next()) {
        (Some("s"), Some(code), None) => ShopCode::parse(code),
        (Some("s"), None, None) => Err(QrError::Truncated { len: 0 }),
        _ => Err(QrError::NotAShopLink),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts() -> Vec<String> {
        vec!["mq.ft.example.cn".to_string()]
    }

    #[test]
    fn check_character_matches_the_resident_id_scheme() {
        // A published sample resident ID: 11010519491231002X.
        assert_eq!(check_char("11010519491231002"), 'X');
        let code = ShopCode::new(110106, 123).map(|c| c.to_string());
        assert_eq!(code.as_deref(), Ok("1101060001232"));
    }

    #[test]
    fn a_signboard_link_gives_its_code() -> Result<(), QrError> {
        let code = ShopCode::new(110106, 4213)?;
        let link = code.link("mq.ft.example.cn");
        assert_eq!(parse_payload(&link, &hosts()), Ok(code.clone()));
        let wechat = format!("{link}/?from=singlemessage&isappinstalled=0");
        assert_eq!(parse_payload(&wechat, &hosts()), Ok(code.clone()));
        let upper_host = link.replace("mq.ft.example.cn", "MQ.FT.Example.CN");
        assert_eq!(parse_payload(&upper_host, &hosts()), Ok(code));
        Ok(())
    }

    #[test]
    fn bad_payloads_name_their_problem() {
        let h = hosts();
        assert_eq!(parse_payload("  ", &h), Err(QrError::Empty));
        assert_eq!(parse_payload("hello 你好", &h), Err(QrError::NotALink));
        assert!(matches!(
            parse_payload("wxp://f2f0abc", &h),
            Err(QrError::ForeignScheme { .. })
        ));
        assert!(matches!(
            parse_payload("http://mq.ft.example.cn/s/110106000123X", &h),
            Err(QrError::ForeignScheme { .. })
        ));
        assert_eq!(
            parse_payload("https://evil.example.com/s/110106000123X", &h),
            Err(QrError::ForeignHost {
                host: "evil.example.com".into()
            })
        );
        assert_eq!(
            parse_payload("https://mq.ft.example.cn/about", &h),
            Err(QrError::NotAShopLink)
        );
        assert_eq!(
            parse_payload("https://mq.ft.example.cn/s/1101060001", &h),
            Err(QrError::Truncated { len: 10 })
        );
        assert_eq!(
            parse_payload("https://mq.ft.example.cn/s/", &h),
            Err(QrError::Truncated { len: 0 })
        );
        assert_eq!(
            parse_payload("https://mq.ft.example.cn/s/1101060001239", &h),
            Err(QrError::CheckFailed)
        );
        assert!(matches!(
            parse_payload("https://mq.ft.example.cn/s/11010600012%E4%B8%AD", &h),
            Err(QrError::Malformed { .. })
        ));
    }
}
