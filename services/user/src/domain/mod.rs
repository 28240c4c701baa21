//! Pure account rules: inputs parsed into newtypes at the edge, and the checks behind every
//! field violation the service reports. No I/O here.

use std::fmt;

use unicode_normalization::UnicodeNormalization as _;

pub use mercato_platform::address::{PostalAddress, parse_address};

/// Longest accepted e-mail address (RFC 5321 path limit).
pub const MAX_EMAIL_CHARS: usize = 254;
/// Shortest accepted password.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest accepted password: longer input is refused before hashing so it cannot burn CPU.
pub const MAX_PASSWORD_CHARS: usize = 128;
/// Longest display name after trimming.
pub const MAX_DISPLAY_NAME_CHARS: usize = 100;
/// Longest profile description.
pub const MAX_DESCRIPTION_CHARS: usize = 1000;
/// Longest external subject.
pub const MAX_SUBJECT_CHARS: usize = 255;

pub use mercato_platform::error::Violation;

/// A normalised e-mail address: trimmed, lower-cased, one `@` with a non-empty local part and a
/// domain containing a dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Parses and normalises `raw`; the error says what is wrong.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let email = raw.trim().to_lowercase();
        if email.is_empty() {
            return Err("is required".to_owned());
        }
        if email.chars().count() > MAX_EMAIL_CHARS {
            return Err(format!("must be at most {MAX_EMAIL_CHARS} characters"));
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err("must contain one @".to_owned());
        };
        if domain.contains('@') {
            return Err("must contain one @".to_owned());
        }
        if local.is_empty() {
            return Err("must have a local part before @".to_owned());
        }
        if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("must not contain spaces".to_owned());
        }
        let labels_ok = domain.split('.').all(|label| !label.is_empty());
        if !domain.contains('.') || !labels_ok {
            return Err("must have a domain containing a dot".to_owned());
        }
        Ok(Self(email))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before `@`, the default display name.
    pub fn local_part(&self) -> &str {
        self.0.split_once('@').map_or(self.0.as_str(), |(l, _)| l)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password that meets the length rules. `Debug` never shows it.
#[derive(Clone)]
pub struct Password(String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(\"***\")")
    }
}

impl Password {
    /// A new password (registration): 8-128 Unicode scalar values.
    pub fn new_password(raw: String) -> Result<Self, String> {
        let chars = raw.chars().count();
        if chars < MIN_PASSWORD_CHARS {
            return Err(format!("must be at least {MIN_PASSWORD_CHARS} characters"));
        }
        if chars > MAX_PASSWORD_CHARS {
            return Err(format!("must be at most {MAX_PASSWORD_CHARS} characters"));
        }
        Ok(Self(raw))
    }

    /// A presented password (login): non-empty and not oversized; its strength is not judged.
    pub fn presented(raw: String) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("is required".to_owned());
        }
        if raw.chars().count() > MAX_PASSWORD_CHARS {
            return Err(format!("must be at most {MAX_PASSWORD_CHARS} characters"));
        }
        Ok(Self(raw))
    }

    /// The clear text, for hashing only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// `raw` in Unicode Normalization Form C, so a decomposed `e` + U+0301 is stored (and counted)
/// as the one character `é`, and two spellings of one name compare equal.
///
/// Every free-text field is normalised before its length and character checks run.
pub fn nfc(raw: &str) -> String {
    raw.nfc().collect()
}

/// Display name for a new account: NFC, trimmed, at most 100 characters; empty means "use the
/// local part of the e-mail address".
pub fn registration_display_name(raw: &str, email: &Email) -> Result<String, String> {
    let name = nfc(raw);
    let name = name.trim();
    if name.is_empty() {
        return Ok(truncate(email.local_part(), MAX_DISPLAY_NAME_CHARS));
    }
    profile_display_name(name)
}

/// Display name in a profile update: NFC, 1-100 characters after trimming.
pub fn profile_display_name(raw: &str) -> Result<String, String> {
    let name = nfc(raw);
    let name = name.trim();
    if name.is_empty() {
        return Err("is required".to_owned());
    }
    if name.chars().count() > MAX_DISPLAY_NAME_CHARS {
        return Err(format!(
            "must be at most {MAX_DISPLAY_NAME_CHARS} characters"
        ));
    }
    Ok(name.to_owned())
}

/// Profile description: NFC, at most 1,000 characters.
pub fn description(raw: &str) -> Result<String, String> {
    let text = nfc(raw);
    let text = text.trim();
    if text.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(format!(
            "must be at most {MAX_DESCRIPTION_CHARS} characters"
        ));
    }
    Ok(text.to_owned())
}

/// The first `max` characters of `raw`.
pub fn truncate(raw: &str, max: usize) -> String {
    raw.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        let email = Email::parse("  Alice@Example.COM ").expect("valid");
        assert_eq!(email.as_str(), "alice@example.com");
        assert_eq!(email.local_part(), "alice");
    }

    #[test]
    fn malformed_emails_are_refused() {
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@example",
            "alice@@example.com",
            "a@b@example.com",
            "alice@example.",
            "al ice@example.com",
            &format!("{}@example.com", "a".repeat(250)),
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn passwords_are_counted_in_characters_not_bytes() {
        assert!(Password::new_password("ぱすわーどです".to_owned()).is_err());
        assert!(Password::new_password("ぱすわーどですね".to_owned()).is_ok());
        assert!(Password::new_password("x".repeat(129)).is_err());
    }

    #[test]
    fn an_empty_display_name_defaults_to_the_local_part() {
        let email = Email::parse("bob@example.com").expect("valid");
        assert_eq!(
            registration_display_name("  ", &email).as_deref(),
            Ok("bob")
        );
        assert!(registration_display_name(&"n".repeat(101), &email).is_err());
    }

    #[test]
    fn display_names_are_composed_before_counting() {
        let email = Email::parse("bob@example.com").expect("valid");
        assert_eq!(
            registration_display_name(" Jose\u{301} ", &email).as_deref(),
            Ok("José")
        );
        assert_eq!(
            profile_display_name("\u{30AB}\u{3099}").as_deref(),
            Ok("ガ")
        );
        // 100 decomposed characters (200 code points) fit once composed.
        assert!(profile_display_name(&"e\u{301}".repeat(100)).is_ok());
        assert_eq!(description("Cafe\u{301}").as_deref(), Ok("Café"));
    }

    #[test]
    fn password_debug_hides_the_secret() {
        let password = Password::new_password("hunter22hunter".to_owned()).expect("valid");
        assert!(!format!("{password:?}").contains("hunter"));
    }
}
