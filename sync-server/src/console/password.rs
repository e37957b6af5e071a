//! Console passwords: Argon2id with the argon2 crate's defaults (19 MiB,
//! two passes, one lane: OWASP's recommended minimum), kept as PHC strings.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// The shortest and longest password accepted.
pub const MIN_CHARS: usize = 8;
pub const MAX_CHARS: usize = 128;

/// Whether `password` may be set: its length, and no control characters.
pub fn check_new(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if !(MIN_CHARS..=MAX_CHARS).contains(&n) {
        return Err(format!(
            "a password has {MIN_CHARS} to {MAX_CHARS} characters ({n} given)"
        ));
    }
    if password.chars().any(char::is_control) {
        return Err("a password may not contain control characters".into());
    }
    Ok(())
}

/// The PHC string to store for `password` (checked by [`check_new`]).
pub fn hash(password: &str) -> Result<String, String> {
    check_new(password)?;
    let mut bytes = [0u8; 16];
    rand::fill(&mut bytes);
    let salt = SaltString::encode_b64(&bytes).map_err(|e| format!("a salt: {e}"))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("hashing the password: {e}"))
}

/// Whether `password` matches `stored`. A user without a password (or with a
/// stored string that does not parse) never matches, after as much work as a
/// real check, so the answer's timing does not tell which users exist.
pub fn verify(stored: Option<&str>, password: &str) -> bool {
    let parsed = stored.and_then(|s| PasswordHash::new(s).ok());
    let argon2 = argon2::Argon2::default();
    match parsed {
        Some(h) => argon2.verify_password(password.as_bytes(), &h).is_ok(),
        None => {
            let salt = SaltString::from_b64("bWVucWlhbmR1bW15c2FsdA").ok();
            if let Some(salt) = salt {
                let _ = argon2.hash_password(password.as_bytes(), &salt);
            }
            false
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_password_verifies_only_against_its_own_hash() {
        let h = hash("门前三包-2026").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify(Some(&h), "门前三包-2026"));
        assert!(!verify(Some(&h), "门前三包-2027"));
        assert!(!verify(None, "门前三包-2026"));
        assert!(!verify(Some("not a hash"), "门前三包-2026"));
        assert_ne!(hash("门前三包-2026").unwrap(), h, "a fresh salt each time");
    }

    #[test]
    fn short_long_and_control_passwords_are_refused() {
        assert!(check_new("1234567").is_err());
        assert!(check_new(&"x".repeat(129)).is_err());
        assert!(check_new("abc\u{1b}[31mdefg").is_err());
        assert!(check_new("12345678").is_ok());
    }
}
