//! Shipping-address rules, shared by every service that takes an address (the user service's
//! saved address, the order service's checkout): NFC normalisation and trimming of every text field, Japanese postal codes (`1500001` → `150-0001`) and phone
//! numbers, prefectures, and one violation per bad field.

use unicode_normalization::UnicodeNormalization as _;

use crate::error::Violation;

fn nfc(raw: &str) -> String {
    raw.nfc().collect()
}

/// A validated, normalised shipping address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PostalAddress {
    /// Recipient's full name.
    pub recipient_name: String,
    /// Recipient's name in katakana (optional).
    pub recipient_name_kana: String,
    /// ISO 3166-1 alpha-2, upper case.
    pub country_code: String,
    /// `ddd-dddd` for JP.
    pub postal_code: String,
    /// Prefecture, state or province.
    pub region: String,
    /// City, ward, town or village.
    pub locality: String,
    /// Street, block and number.
    pub address_line1: String,
    /// Building, floor, room (optional).
    pub address_line2: String,
    /// ASCII digits for JP, E.164 elsewhere.
    pub phone_number: String,
}

/// The 47 prefectures of Japan.
const PREFECTURES: [&str; 47] = [
    "北海道",
    "青森県",
    "岩手県",
    "宮城県",
    "秋田県",
    "山形県",
    "福島県",
    "茨城県",
    "栃木県",
    "群馬県",
    "埼玉県",
    "千葉県",
    "東京都",
    "神奈川県",
    "新潟県",
    "富山県",
    "石川県",
    "福井県",
    "山梨県",
    "長野県",
    "岐阜県",
    "静岡県",
    "愛知県",
    "三重県",
    "滋賀県",
    "京都府",
    "大阪府",
    "兵庫県",
    "奈良県",
    "和歌山県",
    "鳥取県",
    "島根県",
    "岡山県",
    "広島県",
    "山口県",
    "徳島県",
    "香川県",
    "愛媛県",
    "高知県",
    "福岡県",
    "佐賀県",
    "長崎県",
    "熊本県",
    "大分県",
    "宮崎県",
    "鹿児島県",
    "沖縄県",
];

/// Validates and normalises `input`; `prefix` is the request path of the address
/// (`shipping_address`), so every violation names the exact field.
///
/// Every field is brought to NFC first, so the length limits count what a reader sees and the
/// prefecture and katakana checks accept decomposed input (`カ` + U+3099 is `ガ`).
pub fn parse_address(input: &PostalAddress, prefix: &str) -> Result<PostalAddress, Vec<Violation>> {
    let input = &nfc_fields(input);
    let mut violations = Vec::new();
    let mut check = |field: &str, result: Result<String, String>| -> String {
        result.unwrap_or_else(|description| {
            violations.push(Violation::new(format!("{prefix}.{field}"), description));
            String::new()
        })
    };
    let country_code = check("country_code", country_code(&input.country_code));
    let japan = country_code == "JP";
    let address = PostalAddress {
        recipient_name: check("recipient_name", required_text(&input.recipient_name, 100)),
        recipient_name_kana: check("recipient_name_kana", kana(&input.recipient_name_kana)),
        postal_code: check("postal_code", postal_code(&input.postal_code, japan)),
        region: check("region", region(&input.region, japan)),
        locality: check("locality", required_text(&input.locality, 100)),
        address_line1: check("address_line1", required_text(&input.address_line1, 200)),
        address_line2: check("address_line2", optional_text(&input.address_line2, 200)),
        phone_number: check("phone_number", phone_number(&input.phone_number, japan)),
        country_code,
    };
    if violations.is_empty() {
        Ok(address)
    } else {
        Err(violations)
    }
}

/// Every text field of `input` in NFC.
fn nfc_fields(input: &PostalAddress) -> PostalAddress {
    PostalAddress {
        recipient_name: nfc(&input.recipient_name),
        recipient_name_kana: nfc(&input.recipient_name_kana),
        country_code: nfc(&input.country_code),
        postal_code: nfc(&input.postal_code),
        region: nfc(&input.region),
        locality: nfc(&input.locality),
        address_line1: nfc(&input.address_line1),
        address_line2: nfc(&input.address_line2),
        phone_number: nfc(&input.phone_number),
    }
}

/// Full-width digits (`０`-`９`) as ASCII digits; everything else unchanged.
fn ascii_digits(raw: &str) -> String {
    raw.chars()
        .map(|c| match c {
            '\u{FF10}'..='\u{FF19}' => {
                char::from_u32(u32::from(c) - 0xFF10 + u32::from('0')).unwrap_or(c)
            }
            '\u{FF0D}' | '\u{2212}' | '\u{30FC}' => '-',
            _ => c,
        })
        .collect()
}

fn required_text(raw: &str, max: usize) -> Result<String, String> {
    let text = raw.trim();
    if text.is_empty() {
        return Err("is required".to_owned());
    }
    optional_text(text, max)
}

fn optional_text(raw: &str, max: usize) -> Result<String, String> {
    let text = raw.trim();
    if text.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    if text.chars().any(char::is_control) {
        return Err("must not contain control characters".to_owned());
    }
    Ok(text.to_owned())
}

fn country_code(raw: &str) -> Result<String, String> {
    let code = raw.trim();
    if code.is_empty() {
        return Err("is required".to_owned());
    }
    if code.len() == 2 && code.chars().all(|c| c.is_ascii_uppercase()) {
        Ok(code.to_owned())
    } else {
        Err("must be an upper-case ISO 3166-1 alpha-2 code such as JP".to_owned())
    }
}

fn kana(raw: &str) -> Result<String, String> {
    let text = optional_text(raw, 100)?;
    // Katakana block (including the long vowel mark ー), ASCII and ideographic spaces.
    let katakana = |c: char| matches!(c, '\u{30A0}'..='\u{30FF}' | ' ' | '\u{3000}');
    if text.chars().all(katakana) {
        Ok(text)
    } else {
        Err("must be full-width katakana".to_owned())
    }
}

fn postal_code(raw: &str, japan: bool) -> Result<String, String> {
    let code = ascii_digits(raw.trim());
    if code.is_empty() {
        return Err("is required".to_owned());
    }
    if japan {
        let bytes = code.as_bytes();
        let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
        return match bytes.len() {
            7 if digits(bytes) => Ok(format!("{}-{}", &code[..3], &code[3..])),
            8 if bytes[3] == b'-' && digits(&bytes[..3]) && digits(&bytes[4..]) => Ok(code),
            _ => Err("must be a Japanese postal code written ddd-dddd".to_owned()),
        };
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == ' ' || c == '-';
    if code.chars().count() <= 16 && code.chars().all(allowed) {
        Ok(code)
    } else {
        Err("must be 1-16 letters, digits, spaces or hyphens".to_owned())
    }
}

fn region(raw: &str, japan: bool) -> Result<String, String> {
    let text = optional_text(raw, 50)?;
    if japan {
        if text.is_empty() {
            return Err("is required".to_owned());
        }
        if !PREFECTURES.contains(&text.as_str()) {
            return Err("must be one of the 47 prefectures, e.g. 東京都".to_owned());
        }
    }
    Ok(text)
}

fn phone_number(raw: &str, japan: bool) -> Result<String, String> {
    let text = ascii_digits(raw.trim());
    if text.is_empty() {
        return Err("is required".to_owned());
    }
    if japan {
        let digits: String = text.chars().filter(|c| !matches!(c, '-' | ' ')).collect();
        let ok = (10..=11).contains(&digits.len())
            && digits.starts_with('0')
            && digits.chars().all(|c| c.is_ascii_digit());
        return if ok {
            Ok(digits)
        } else {
            Err("must be 10 or 11 digits starting with 0".to_owned())
        };
    }
    let ok = text.strip_prefix('+').is_some_and(|digits| {
        (8..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit())
    });
    if ok {
        Ok(text)
    } else {
        Err("must be in E.164 form: + then 8-15 digits".to_owned())
    }
}

impl From<mercato_proto::mercato::common::v1::PostalAddress> for PostalAddress {
    fn from(address: mercato_proto::mercato::common::v1::PostalAddress) -> Self {
        let mercato_proto::mercato::common::v1::PostalAddress {
            recipient_name,
            recipient_name_kana,
            country_code,
            postal_code,
            region,
            locality,
            address_line1,
            address_line2,
            phone_number,
        } = address;
        Self {
            recipient_name,
            recipient_name_kana,
            country_code,
            postal_code,
            region,
            locality,
            address_line1,
            address_line2,
            phone_number,
        }
    }
}

impl From<PostalAddress> for mercato_proto::mercato::common::v1::PostalAddress {
    fn from(address: PostalAddress) -> Self {
        Self {
            recipient_name: address.recipient_name,
            recipient_name_kana: address.recipient_name_kana,
            country_code: address.country_code,
            postal_code: address.postal_code,
            region: address.region,
            locality: address.locality,
            address_line1: address.address_line1,
            address_line2: address.address_line2,
            phone_number: address.phone_number,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokyo() -> PostalAddress {
        PostalAddress {
            recipient_name: "山田 太郎".to_owned(),
            recipient_name_kana: "ヤマダ タロウ".to_owned(),
            country_code: "JP".to_owned(),
            postal_code: "1500001".to_owned(),
            region: "東京都".to_owned(),
            locality: "渋谷区".to_owned(),
            address_line1: "神宮前1-2-3".to_owned(),
            address_line2: String::new(),
            phone_number: "090-1234-5678".to_owned(),
        }
    }

    #[test]
    fn japanese_postal_codes_and_phones_are_normalised() {
        let address = parse_address(&tokyo(), "a").expect("valid");
        assert_eq!(address.postal_code, "150-0001");
        assert_eq!(address.phone_number, "09012345678");
        let full_width = PostalAddress {
            postal_code: "１５０－０００１".to_owned(),
            ..tokyo()
        };
        assert_eq!(
            parse_address(&full_width, "a").expect("valid").postal_code,
            "150-0001"
        );
    }

    #[test]
    fn every_bad_field_is_named() {
        let bad = PostalAddress {
            postal_code: "15-00001".to_owned(),
            region: "Tokyo".to_owned(),
            recipient_name_kana: "やまだ".to_owned(),
            phone_number: "12345".to_owned(),
            locality: String::new(),
            ..tokyo()
        };
        let fields: Vec<String> = parse_address(&bad, "shipping_address")
            .expect_err("invalid")
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(
            fields,
            [
                "shipping_address.recipient_name_kana",
                "shipping_address.postal_code",
                "shipping_address.region",
                "shipping_address.locality",
                "shipping_address.phone_number",
            ]
        );
    }

    #[test]
    fn decomposed_text_is_stored_composed() {
        let decomposed = PostalAddress {
            recipient_name: "Rene\u{301}e".to_owned(),
            recipient_name_kana: "\u{30AB}\u{3099}\u{30AF}".to_owned(),
            locality: "\u{30B7}\u{3099}\u{30E5}\u{30F3}".to_owned(),
            address_line1: "Cafe\u{301} 1-2-3".to_owned(),
            ..tokyo()
        };
        let address = parse_address(&decomposed, "a").expect("decomposed input is valid");
        assert_eq!(address.recipient_name, "Renée");
        assert_eq!(address.recipient_name_kana, "ガク");
        assert_eq!(address.locality, "ジュン");
        assert_eq!(address.address_line1, "Café 1-2-3");
    }

    #[test]
    fn length_limits_count_composed_characters() {
        // 100 decomposed `é` are 200 code points but 100 characters once composed.
        let name = "e\u{301}".repeat(100);
        let address = PostalAddress {
            recipient_name: name,
            ..tokyo()
        };
        let parsed = parse_address(&address, "a").expect("100 composed characters fit");
        assert_eq!(parsed.recipient_name, "é".repeat(100));
    }

    #[test]
    fn other_countries_get_the_generic_rules() {
        let address = PostalAddress {
            country_code: "US".to_owned(),
            postal_code: "94103".to_owned(),
            region: String::new(),
            phone_number: "+14155550100".to_owned(),
            ..tokyo()
        };
        assert!(parse_address(&address, "a").is_ok());
    }
}
