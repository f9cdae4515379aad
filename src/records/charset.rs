//! What a text column's character set can store (MySQL refuses or mangles anything else).

/// Which characters a text column can store, by its character set. Rows travel as utf8mb4;
/// the server converts them to the column's set and refuses (strict mode) what it cannot hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Charset {
    /// utf8mb4, utf16, utf32: every character.
    #[default]
    Unicode,
    /// utf8mb3 (`utf8` in older servers) and ucs2: the Basic Multilingual Plane only.
    Bmp,
    /// latin1, which MySQL and MariaDB define as Windows-1252.
    Latin1,
    /// ascii: U+0000 to U+007F.
    Ascii,
    /// Any other set (gbk, sjis, ...): not checked here; the server refuses what it cannot hold.
    Unchecked,
}

/// The characters Windows-1252 puts at 0x80-0x9F, besides the five bytes it leaves undefined
/// (0x81, 0x8D, 0x8F, 0x90, 0x9D), which MySQL's latin1 maps to U+0081 and so on.
const CP1252_HIGH: [char; 32] = [
    '\u{20ac}', '\u{81}', '\u{201a}', '\u{192}', '\u{201e}', '\u{2026}', '\u{2020}', '\u{2021}',
    '\u{2c6}', '\u{2030}', '\u{160}', '\u{2039}', '\u{152}', '\u{8d}', '\u{17d}', '\u{8f}',
    '\u{90}', '\u{2018}', '\u{2019}', '\u{201c}', '\u{201d}', '\u{2022}', '\u{2013}', '\u{2014}',
    '\u{2dc}', '\u{2122}', '\u{161}', '\u{203a}', '\u{153}', '\u{9d}', '\u{17e}', '\u{178}',
];

impl Charset {
    /// From information_schema's CHARACTER_SET_NAME.
    pub fn from_name(name: &str) -> Charset {
        match name.to_ascii_lowercase().as_str() {
            "utf8mb4" | "utf16" | "utf16le" | "utf32" => Charset::Unicode,
            "utf8mb3" | "utf8" | "ucs2" => Charset::Bmp,
            "latin1" => Charset::Latin1,
            "ascii" => Charset::Ascii,
            _ => Charset::Unchecked,
        }
    }

    /// The first character of `s` this set cannot store, if any.
    pub(super) fn first_unstorable(self, s: &str) -> Option<char> {
        match self {
            Charset::Unicode | Charset::Unchecked => None,
            // Characters past U+FFFF are exactly the 4-byte UTF-8 sequences (lead 0xF0-0xF4).
            Charset::Bmp => {
                memchr::memchr3(0xf0, 0xf1, 0xf2, s.as_bytes())
                    .or_else(|| memchr::memchr2(0xf3, 0xf4, s.as_bytes()))?;
                s.chars().find(|&c| c as u32 > 0xffff)
            }
            _ if s.is_ascii() => None,
            Charset::Ascii => s.chars().find(|c| !c.is_ascii()),
            Charset::Latin1 => s.chars().find(|&c| {
                !(c as u32 <= 0x7f
                    || (0xa0..=0xff).contains(&(c as u32))
                    || CP1252_HIGH.contains(&c))
            }),
        }
    }

    pub(super) fn describe(self) -> &'static str {
        match self {
            Charset::Bmp => "utf8mb3 (or ucs2), which holds nothing past U+FFFF such as emoji",
            Charset::Latin1 => "latin1 (Windows-1252)",
            Charset::Ascii => "ascii",
            Charset::Unicode | Charset::Unchecked => "this",
        }
    }
}
