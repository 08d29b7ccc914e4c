//! The libconfig lexer of the `.jcfg` reader: tokens with their positions,
//! comments and blanks skipped, numbers and string escapes decoded.

use super::JcfgError;

/// A 1-based line and column (in characters) of the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Pos {
    pub(super) line: usize,
    pub(super) column: usize,
}

#[derive(Debug, PartialEq)]
pub(super) enum Tok {
    /// A bare word: a setting name, or `true`/`false` in value position.
    Word(String),
    Int(i64),
    Float(f64),
    Str(String),
    /// An unquoted absolute path (see the `jcfg` module docs for why).
    Path(String),
    Punct(char),
    Eof,
}

impl Tok {
    pub(super) fn describe(&self) -> String {
        match self {
            Tok::Word(word) => format!("`{word}`"),
            Tok::Int(value) => format!("number `{value}`"),
            Tok::Float(value) => format!("number `{value}`"),
            Tok::Str(_) => "a string".to_owned(),
            Tok::Path(path) => format!("`{path}`"),
            Tok::Punct(c) => format!("`{c}`"),
            Tok::Eof => "end of input".to_owned(),
        }
    }
}

pub(super) struct Token {
    pub(super) tok: Tok,
    pub(super) pos: Pos,
}

/// Turns text into tokens on demand, skipping blanks and comments.
pub(super) struct Lexer {
    chars: Vec<char>,
    index: usize,
    pos: Pos,
}

impl Lexer {
    pub(super) fn new(text: &str) -> Self {
        Lexer { chars: text.chars().collect(), index: 0, pos: Pos { line: 1, column: 1 } }
    }

    fn peek_at(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.index.saturating_add(ahead)).copied()
    }

    fn peek(&self) -> Option<char> {
        self.peek_at(0)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.index += 1;
        if c == '\n' {
            self.pos.line += 1;
            self.pos.column = 1;
        } else {
            self.pos.column += 1;
        }
        Some(c)
    }

    fn skip_line(&mut self) {
        while let Some(c) = self.bump() {
            if c == '\n' {
                break;
            }
        }
    }

    fn skip_trivia(&mut self) -> Result<(), JcfgError> {
        loop {
            match (self.peek(), self.peek_at(1)) {
                (Some(c), _) if c.is_whitespace() => {
                    self.bump();
                }
                (Some('#'), _) | (Some('/'), Some('/')) => self.skip_line(),
                (Some('/'), Some('*')) => {
                    let start = self.pos;
                    self.bump();
                    self.bump();
                    loop {
                        match self.bump() {
                            Some('*') if self.peek() == Some('/') => {
                                self.bump();
                                break;
                            }
                            Some(_) => {}
                            None => return Err(JcfgError::syntax(start, "unterminated `/*` comment")),
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    pub(super) fn next_token(&mut self) -> Result<Token, JcfgError> {
        self.skip_trivia()?;
        let pos = self.pos;
        let tok = match self.peek() {
            None => Tok::Eof,
            Some('"') => Tok::Str(self.string()?),
            Some('@') => {
                self.bump();
                let directive = self.word();
                let reason = if directive == "include" {
                    "`@include` is not supported: copy the included settings into this file".to_owned()
                } else {
                    format!("unknown directive `@{directive}`")
                };
                return Err(JcfgError::syntax(pos, reason));
            }
            Some(c) if c.is_ascii_alphabetic() || c == '*' => Tok::Word(self.word()),
            Some(c) if c.is_ascii_digit() || matches!(c, '-' | '+' | '.') => {
                let text = self.number_text();
                number(&text).map_err(|reason| JcfgError::syntax(pos, reason))?
            }
            // Comments were skipped above, so this slash starts a path.
            Some('/') => Tok::Path(self.bare_path()),
            Some(c) if "=:;,{}[]()".contains(c) => {
                self.bump();
                Tok::Punct(c)
            }
            Some(c) => return Err(JcfgError::syntax(pos, format!("unexpected character `{}`", c.escape_debug()))),
        };
        Ok(Token { tok, pos })
    }

    fn word(&mut self) -> String {
        let mut word = String::new();
        while let Some(c) = self.peek() {
            if !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '*')) {
                break;
            }
            word.push(c);
            self.bump();
        }
        word
    }

    fn bare_path(&mut self) -> String {
        let mut path = String::new();
        while let Some(c) = self.peek() {
            if c.is_whitespace() || ";,#)]}\"".contains(c) {
                break;
            }
            path.push(c);
            self.bump();
        }
        path
    }

    /// Takes the longest run that could belong to a number, so that `12ab`
    /// is reported as one bad number rather than a number and a name.
    fn number_text(&mut self) -> String {
        let mut text = String::new();
        if let Some(sign @ ('-' | '+')) = self.peek() {
            text.push(sign);
            self.bump();
        }
        let hex = self.peek() == Some('0') && matches!(self.peek_at(1), Some('x' | 'X'));
        while let Some(c) = self.peek() {
            let exponent_sign = matches!(c, '-' | '+') && !hex && text.ends_with(['e', 'E']);
            if !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_') || exponent_sign) {
                break;
            }
            text.push(c);
            self.bump();
        }
        text
    }

    /// Reads a string literal; libconfig strings are bytes, so `\xNN` escapes
    /// are collected as bytes and the result must be UTF-8.
    fn string(&mut self) -> Result<String, JcfgError> {
        let start = self.pos;
        self.bump();
        let mut bytes = Vec::new();
        let mut utf8 = [0u8; 4];
        let unterminated = || JcfgError::syntax(start, "unterminated string");
        loop {
            let c = self.bump().ok_or_else(unterminated)?;
            let escaped = match c {
                '"' => break,
                '\\' => match self.bump().ok_or_else(unterminated)? {
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    'f' => '\u{c}',
                    '"' => '"',
                    '\\' => '\\',
                    'x' => match self.hex_byte() {
                        Some(byte) => {
                            bytes.push(byte);
                            continue;
                        }
                        None => {
                            bytes.extend_from_slice(b"\\x");
                            continue;
                        }
                    },
                    other => {
                        bytes.push(b'\\');
                        other
                    }
                },
                other => other,
            };
            bytes.extend_from_slice(escaped.encode_utf8(&mut utf8).as_bytes());
        }
        String::from_utf8(bytes)
            .map_err(|_| JcfgError::syntax(start, "string is not valid UTF-8 once `\\x` escapes are decoded"))
    }

    fn hex_byte(&mut self) -> Option<u8> {
        let high = self.peek()?.to_digit(16)?;
        let low = self.peek_at(1)?.to_digit(16)?;
        self.bump();
        self.bump();
        u8::try_from(high * 16 + low).ok()
    }
}

/// Classifies number text: decimal or hex integers with an optional `L`/`LL`
/// suffix, or floats (`1.5`, `.5`, `5.`, `1e3`, `-2.5E-3`).
fn number(text: &str) -> Result<Tok, String> {
    let invalid = || format!("invalid number `{text}`");
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let int_digits = |s: &'_ str| {
        let s = s.strip_suffix("LL").or_else(|| s.strip_suffix('L')).unwrap_or(s);
        s.to_owned()
    };
    if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        let digits = int_digits(hex);
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        // Hex is a bit pattern, as in C: 0xFFFFFFFFFFFFFFFF reads as -1.
        let value = u64::from_str_radix(&digits, 16)
            .map_err(|_| format!("hexadecimal number `{text}` does not fit in 64 bits"))?;
        let value = i64::from_ne_bytes(value.to_ne_bytes());
        return Ok(Tok::Int(if negative { value.wrapping_neg() } else { value }));
    }
    let digits = int_digits(body);
    if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) {
        let signed = if negative { format!("-{digits}") } else { digits };
        return signed.parse().map(Tok::Int).map_err(|_| format!("integer `{text}` does not fit in 64 bits"));
    }
    let (mantissa, exponent) = match body.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, Some(exponent)),
        None => (body, None),
    };
    let (whole, fraction, dot) = match mantissa.split_once('.') {
        Some((whole, fraction)) => (whole, fraction, true),
        None => (mantissa, "", false),
    };
    let all_digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && all_digits(e)
    });
    if !(dot || exponent.is_some())
        || (whole.is_empty() && fraction.is_empty())
        || !all_digits(whole)
        || !all_digits(fraction)
        || !exponent_ok
    {
        return Err(invalid());
    }
    // Rebuilt in a form Rust's float parser is sure to accept.
    let canonical = format!(
        "{}{}.{}e{}",
        if negative { "-" } else { "" },
        if whole.is_empty() { "0" } else { whole },
        if fraction.is_empty() { "0" } else { fraction },
        exponent.unwrap_or("0"),
    );
    canonical.parse().map(Tok::Float).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// All tokens of `text` up to the end, failing the test on an error.
    fn tokens(text: &str) -> Vec<Tok> {
        let mut lexer = Lexer::new(text);
        let mut tokens = Vec::new();
        loop {
            match lexer.next_token() {
                Ok(Token { tok: Tok::Eof, .. }) => return tokens,
                Ok(token) => tokens.push(token.tok),
                Err(error) => panic!("lexing {text:?} failed: {error}"),
            }
        }
    }

    /// The first error met while lexing `text`, as (line, column, reason).
    fn lex_error(text: &str) -> (usize, usize, String) {
        let mut lexer = Lexer::new(text);
        loop {
            match lexer.next_token() {
                Ok(Token { tok: Tok::Eof, .. }) => panic!("{text:?} lexed without error"),
                Ok(_) => {}
                Err(JcfgError::Syntax { line, column, reason, .. }) => return (line, column, reason),
                Err(other) => panic!("unexpected error {other:?}"),
            }
        }
    }

    fn word(text: &str) -> Tok {
        Tok::Word(text.to_owned())
    }

    fn string(text: &str) -> Tok {
        Tok::Str(text.to_owned())
    }

    #[test]
    fn integers() {
        let text = "42 -17 +5 0x1F 0XfF 123L -9LL 0x10LL 9223372036854775807 \
                    -9223372036854775808 0xFFFFFFFFFFFFFFFF -0x10";
        let expected = [42, -17, 5, 31, 255, 123, -9, 16, i64::MAX, i64::MIN, -1, -16];
        assert_eq!(tokens(text), expected.map(Tok::Int));
        let (_, _, reason) = lex_error("9223372036854775808");
        assert_eq!(reason, "integer `9223372036854775808` does not fit in 64 bits");
        let (_, _, reason) = lex_error("0x1FFFFFFFFFFFFFFFF");
        assert!(reason.contains("does not fit in 64 bits"), "{reason}");
    }

    #[test]
    fn floats() {
        let text = "1.5 -2.25e2 .5 5. 1E3 2e-2 +0.125 -.5e+1 1e999";
        let expected = [1.5, -225.0, 0.5, 5.0, 1000.0, 0.02, 0.125, -5.0, f64::INFINITY];
        assert_eq!(tokens(text), expected.map(Tok::Float));
    }

    #[test]
    fn bad_numbers_are_one_error() {
        for bad in ["12ab", "0x", "0xG1", "1e+", "1e", ".", "-", "+", "1.2.3", "1_000", "1LLL", "0x1.5"] {
            let (line, column, reason) = lex_error(&format!("a = {bad}"));
            assert_eq!((line, column), (1, 5), "{bad}");
            assert_eq!(reason, format!("invalid number `{bad}`"));
        }
        // Only one sign belongs to a number.
        let (_, column, reason) = lex_error("a = --1");
        assert_eq!((column, reason.as_str()), (5, "invalid number `-`"));
    }

    #[test]
    fn words_and_punctuation() {
        let text = "room-1234: { *star* = [x9-y_z, TRUE] ; a_b = (1), }";
        let expected = vec![
            word("room-1234"),
            Tok::Punct(':'),
            Tok::Punct('{'),
            word("*star*"),
            Tok::Punct('='),
            Tok::Punct('['),
            word("x9-y_z"),
            Tok::Punct(','),
            word("TRUE"),
            Tok::Punct(']'),
            Tok::Punct(';'),
            word("a_b"),
            Tok::Punct('='),
            Tok::Punct('('),
            Tok::Int(1),
            Tok::Punct(')'),
            Tok::Punct(','),
            Tok::Punct('}'),
        ];
        assert_eq!(tokens(text), expected);
    }

    #[test]
    fn string_escapes() {
        let text = concat!(
            r#""q\" b\\ n\n t\t r\r f\f x\x41\x7e" "#,
            r#""caf\xc3\xa9 ünï" "C:\dir \x4 \xg" "#,
            "\"line one\nline two\" \"not # a comment // either /* nor this */\" \"\"",
        );
        let expected = vec![
            string("q\" b\\ n\n t\t r\r f\u{c} xA~"),
            string("café ünï"),
            string("C:\\dir \\x4 \\xg"),
            string("line one\nline two"),
            string("not # a comment // either /* nor this */"),
            string(""),
        ];
        assert_eq!(tokens(text), expected);
        let (line, column, reason) = lex_error("a = \"\\xff\"");
        assert_eq!((line, column), (1, 5));
        assert!(reason.contains("UTF-8"), "{reason}");
        for unterminated in ["a = \"open", "a = \"ends in escape\\", "a = \"\\\""] {
            let (line, column, reason) = lex_error(unterminated);
            assert_eq!((line, column, reason.as_str()), (1, 5, "unterminated string"));
        }
    }

    #[test]
    fn comments_and_blanks_are_skipped() {
        let text = "# hash\n// slashes\n/* block\n spanning * / lines */a/**/=/* x */1 # end";
        assert_eq!(tokens(text), vec![word("a"), Tok::Punct('='), Tok::Int(1)]);
        assert_eq!(tokens("\t \r\n  // only comments\n/* */ #"), vec![]);
        let (line, column, reason) = lex_error("a = 1\n  /* open * /");
        assert_eq!((line, column), (2, 3));
        assert_eq!(reason, "unterminated `/*` comment");
    }

    #[test]
    fn unquoted_absolute_paths() {
        let text = "/etc/ssl/cert.pem\t# comment\n/a;/b,/c) /d] /e} / /f\"g\" /h//i";
        let expected = vec![
            Tok::Path("/etc/ssl/cert.pem".to_owned()),
            Tok::Path("/a".to_owned()),
            Tok::Punct(';'),
            Tok::Path("/b".to_owned()),
            Tok::Punct(','),
            Tok::Path("/c".to_owned()),
            Tok::Punct(')'),
            Tok::Path("/d".to_owned()),
            Tok::Punct(']'),
            Tok::Path("/e".to_owned()),
            Tok::Punct('}'),
            Tok::Path("/".to_owned()),
            Tok::Path("/f".to_owned()),
            string("g"),
            Tok::Path("/h//i".to_owned()),
        ];
        assert_eq!(tokens(text), expected);
    }

    #[test]
    fn directives_are_rejected() {
        let (line, column, reason) = lex_error("a = 1\n  @include \"other.jcfg\"\n");
        assert_eq!((line, column), (2, 3));
        assert_eq!(reason, "`@include` is not supported: copy the included settings into this file");
        let (_, _, reason) = lex_error("@define x");
        assert_eq!(reason, "unknown directive `@define`");
    }

    #[test]
    fn positions_count_lines_and_characters() {
        let mut lexer = Lexer::new("a\n\t\tbé = \"x\ny\" ;\n  }");
        let mut positions = Vec::new();
        while let Ok(Token { tok, pos }) = lexer.next_token() {
            if tok == Tok::Eof {
                break;
            }
            positions.push((pos.line, pos.column));
        }
        // `bé` is not a word character past `b`, so `é` is an error; the
        // positions before it are the ones checked.
        assert_eq!(positions, vec![(1, 1), (2, 3)]);
        let (line, column, reason) = lex_error("a\n\t\tbé");
        assert_eq!((line, column), (2, 4));
        assert_eq!(reason, "unexpected character `é`");
        let mut lexer = Lexer::new("x = \"a\nb\" ;\n  }");
        let mut positions = Vec::new();
        while let Ok(Token { tok, pos }) = lexer.next_token() {
            if tok == Tok::Eof {
                break;
            }
            positions.push((pos.line, pos.column));
        }
        assert_eq!(positions, vec![(1, 1), (1, 3), (1, 5), (2, 4), (3, 3)]);
    }
}
