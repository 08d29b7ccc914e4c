//! The libconfig grammar of the `.jcfg` reader: settings, groups, arrays
//! and lists, turned into TOML values as they are read.

use toml::{Table, Value};

use super::lexer::{Lexer, Pos, Tok, Token};
use super::JcfgError;

/// Deeper nesting than this is refused, so hostile input cannot overflow the
/// stack of the recursive parser; real Janus files nest three levels at most.
const MAX_DEPTH: usize = 64;

/// Parses a whole file; see [`super::parse`].
pub(super) fn parse(text: &str) -> Result<Table, JcfgError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut parser = Parser { lexer: Lexer::new(text), peeked: None, depth: 0 };
    parser.settings(None)
}

struct Parser {
    lexer: Lexer,
    peeked: Option<Token>,
    depth: usize,
}

impl Parser {
    fn next(&mut self) -> Result<Token, JcfgError> {
        match self.peeked.take() {
            Some(token) => Ok(token),
            None => self.lexer.next_token(),
        }
    }

    fn peek(&mut self) -> Result<&Tok, JcfgError> {
        let token = match self.peeked.take() {
            Some(token) => token,
            None => self.lexer.next_token()?,
        };
        Ok(&self.peeked.insert(token).tok)
    }

    /// Reads settings up to the end of input (`open` is `None`) or up to the
    /// `}` closing the group opened at `open`.
    fn settings(&mut self, open: Option<Pos>) -> Result<Table, JcfgError> {
        let mut table = Table::new();
        loop {
            let Token { tok, pos } = self.next()?;
            let name = match (tok, open) {
                (Tok::Word(name), _) => name,
                (Tok::Eof, None) | (Tok::Punct('}'), Some(_)) => return Ok(table),
                (Tok::Eof, Some(open)) => {
                    return Err(JcfgError::syntax(
                        pos,
                        format!(
                            "unexpected end of input: the group opened at line {}, column {} is not closed",
                            open.line, open.column
                        ),
                    ))
                }
                (Tok::Punct('}'), None) => return Err(JcfgError::syntax(pos, "`}` without a group to close")),
                (other, _) => {
                    return Err(JcfgError::syntax(
                        pos,
                        format!(
                            "expected a setting name, found {} (names start with a letter or `*`)",
                            other.describe()
                        ),
                    ))
                }
            };
            let separator = self.next()?;
            if !matches!(separator.tok, Tok::Punct('=' | ':')) {
                return Err(JcfgError::syntax(
                    separator.pos,
                    format!("expected `=` or `:` after setting name `{name}`, found {}", separator.tok.describe()),
                ));
            }
            let value = self.value()?;
            if matches!(self.peek()?, Tok::Punct(';' | ',')) {
                self.next()?;
            }
            table.insert(name, value);
        }
    }

    fn value(&mut self) -> Result<Value, JcfgError> {
        let Token { tok, pos } = self.next()?;
        let closing = match tok {
            Tok::Punct('{') => '}',
            Tok::Punct('(') => ')',
            Tok::Punct('[') => ']',
            other => return self.scalar(other, pos),
        };
        if self.depth >= MAX_DEPTH {
            return Err(JcfgError::syntax(pos, format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        self.depth += 1;
        let value = match closing {
            '}' => self.settings(Some(pos)).map(Value::Table),
            _ => self.sequence(closing, pos).map(Value::Array),
        };
        self.depth -= 1;
        value
    }

    /// Reads the items of a list `( ... )` (any values) or of an array
    /// `[ ... ]` (scalars of one type) after its opening bracket.
    fn sequence(&mut self, closing: char, open: Pos) -> Result<Vec<Value>, JcfgError> {
        let array = closing == ']';
        let mut items: Vec<Value> = Vec::new();
        loop {
            if *self.peek()? == Tok::Punct(closing) {
                self.next()?;
                return Ok(items);
            }
            let Token { tok, pos } = self.next()?;
            let item = match tok {
                Tok::Punct('{' | '(' | '[') if array => {
                    return Err(JcfgError::syntax(
                        pos,
                        "arrays `[...]` hold only plain values; use a list `(...)` for groups, arrays or lists",
                    ))
                }
                Tok::Punct('{' | '(' | '[') => {
                    self.peeked = Some(Token { tok, pos });
                    self.value()?
                }
                other => self.scalar(other, pos)?,
            };
            if let Some(first) = items.first().filter(|first| array && !same_type(first, &item)) {
                return Err(JcfgError::syntax(
                    pos,
                    format!(
                        "array mixes {} and {} values; use a list `(...)` for mixed values",
                        first.type_str(),
                        item.type_str()
                    ),
                ));
            }
            items.push(item);
            let Token { tok, pos } = self.next()?;
            match tok {
                Tok::Punct(',') => {}
                Tok::Punct(c) if c == closing => return Ok(items),
                other => {
                    let kind = if array { "array" } else { "list" };
                    return Err(JcfgError::syntax(
                        pos,
                        format!(
                            "expected `,` or `{closing}` in the {kind} opened at line {}, column {}, found {}",
                            open.line,
                            open.column,
                            other.describe()
                        ),
                    ));
                }
            }
        }
    }

    fn scalar(&mut self, tok: Tok, pos: Pos) -> Result<Value, JcfgError> {
        match tok {
            Tok::Int(value) => Ok(Value::Integer(value)),
            Tok::Float(value) => Ok(Value::Float(value)),
            Tok::Str(mut text) => {
                // Adjacent literals join, as in C: "a" "b" is "ab".
                while let Tok::Str(more) = self.peek()? {
                    text.push_str(more);
                    self.next()?;
                }
                Ok(Value::String(text))
            }
            Tok::Path(path) => Ok(Value::String(path)),
            Tok::Word(word) if word.eq_ignore_ascii_case("true") => Ok(Value::Boolean(true)),
            Tok::Word(word) if word.eq_ignore_ascii_case("false") => Ok(Value::Boolean(false)),
            Tok::Word(word) => {
                Err(JcfgError::syntax(pos, format!("unquoted value `{word}`: strings must be in double quotes")))
            }
            other => Err(JcfgError::syntax(pos, format!("expected a value, found {}", other.describe()))),
        }
    }
}

fn same_type(a: &Value, b: &Value) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

#[cfg(test)]
mod tests {
    use std::panic;

    use super::*;

    /// Parses `text`, failing the test with the error if it does not parse.
    fn jcfg(text: &str) -> Table {
        match parse(text) {
            Ok(table) => table,
            Err(error) => panic!("parse failed: {error}\n--- input ---\n{text}"),
        }
    }

    /// The expected value, written as TOML for readability.
    fn toml(text: &str) -> Table {
        match toml::from_str(text) {
            Ok(table) => table,
            Err(error) => panic!("bad expected TOML: {error}"),
        }
    }

    /// Parses `text`, which must fail, and returns where and why.
    fn syntax_error(text: &str) -> (usize, usize, String) {
        match parse(text) {
            Err(JcfgError::Syntax { line, column, reason, path: None }) => (line, column, reason),
            other => panic!("expected a syntax error for {text:?}, got {other:?}"),
        }
    }

    #[test]
    fn settings_with_either_separator_and_optional_terminators() {
        let parsed = jcfg("a = 1; b : 2, c = 3\nd:4 e=5;f=6,");
        assert_eq!(parsed, toml("a = 1\nb = 2\nc = 3\nd = 4\ne = 5\nf = 6"));
        assert_eq!(jcfg(""), Table::new());
        assert_eq!(jcfg("\u{feff}# only a comment\n"), Table::new());
    }

    #[test]
    fn scalar_values() {
        let parsed = jcfg(concat!(
            "i = -0x10L; f = 2.5e-1; t = True; n = FALSE; s = \"x\\ty\"\n",
            "joined = \"ab\" \"cd\" /* gap */ \"ef\" # comment\n \"gh\";\n",
            "path = /etc/ssl/certs/snake-oil.pem # Debian leaves these unquoted\n",
        ));
        let expected = toml(concat!(
            "i = -16\nf = 0.25\nt = true\nn = false\ns = \"x\\ty\"\njoined = \"abcdefgh\"\n",
            "path = \"/etc/ssl/certs/snake-oil.pem\"",
        ));
        assert_eq!(parsed, expected);
    }

    #[test]
    fn nested_groups_with_both_separators() {
        let parsed = jcfg("outer: {\n  inner = { deep: { x = 1; }; y = \"z\" };\n  empty: { }\n}\nlast = true");
        let expected = toml("last = true\n[outer]\nempty = {}\ninner = { y = \"z\", deep = { x = 1 } }");
        assert_eq!(parsed, expected);
    }

    #[test]
    fn arrays_and_lists() {
        let parsed = jcfg(
            "ints = [1, 2, 3]\nstrs = [\"a\", \"b\",]\npaths = [/a, \"/b\"]\nempty = []\n\
             none = ()\nmixed = (1, \"two\", 3.0, true, [4, 5], (6, (7)), [])",
        );
        let expected = toml(
            "ints = [1, 2, 3]\nstrs = [\"a\", \"b\"]\npaths = [\"/a\", \"/b\"]\nempty = []\n\
             none = []\nmixed = [1, \"two\", 3.0, true, [4, 5], [6, [7]], []]",
        );
        assert_eq!(parsed, expected);
    }

    #[test]
    fn list_of_groups_becomes_array_of_tables() {
        let parsed = jcfg(
            "stream: {\n media = (\n  { type = \"audio\"; port = 5002 },\n  \
             { type = \"video\"; port = 5004; simulcast = { rids = [\"h\", \"l\"] } }\n )\n}",
        );
        let expected = toml(
            "[[stream.media]]\ntype = \"audio\"\nport = 5002\n\
             [[stream.media]]\ntype = \"video\"\nport = 5004\nsimulcast = { rids = [\"h\", \"l\"] }",
        );
        assert_eq!(parsed, expected);
    }

    #[test]
    fn comments_in_odd_places() {
        let parsed = jcfg(concat!(
            "# leading\n// also leading\n/* block\n spanning lines */\n",
            "g /* after name */ : /* before value */ { // after brace\n",
            "  a # before separator\n = 1 /* before terminator */ ;\n",
            "  arr = [ /* first */ 1, # second\n 2 // end\n ]\n",
            "  lst = ( # open\n { x = 1 } /* between */ , { y = 2 } )\n",
            "} # after group\n/* trailing */",
        ));
        let expected = toml("[g]\na = 1\narr = [1, 2]\nlst = [{ x = 1 }, { y = 2 }]");
        assert_eq!(parsed, expected);
        assert_eq!(jcfg("a = 1 # no newline at the end"), toml("a = 1"));
    }

    #[test]
    fn setting_names_allow_libconfig_characters() {
        let parsed = jcfg("room-1234: { a_b = 1 }\n*star* = 2\nx9-y_z = 3");
        let expected = toml("\"*star*\" = 2\nx9-y_z = 3\n[room-1234]\na_b = 1");
        assert_eq!(parsed, expected);
    }

    #[test]
    fn duplicate_names_later_wins() {
        let parsed = jcfg("a = 1\na = 2\ng: { x = 1; y = 2 }\ng: { z = 3 }\nh: { k = 1; k = \"two\" }");
        assert_eq!(parsed, toml("a = 2\ng = { z = 3 }\nh = { k = \"two\" }"));
    }

    #[test]
    fn errors_carry_position_and_reason() {
        let cases: [(&str, usize, usize, &str); 16] = [
            ("a = ", 1, 5, "expected a value, found end of input"),
            ("a 1", 1, 3, "expected `=` or `:` after setting name `a`, found number `1`"),
            ("a = 1\nb = \"open", 2, 5, "unterminated string"),
            ("g: {\n a = 1\n", 3, 1, "group opened at line 1, column 4 is not closed"),
            ("a = 1\n}", 2, 1, "`}` without a group to close"),
            ("a = [1, \"x\"]", 1, 9, "array mixes integer and string values"),
            ("a = [1, 2.0]", 1, 9, "array mixes integer and float values"),
            ("a = [{ b = 1 }]", 1, 6, "arrays `[...]` hold only plain values"),
            ("a = [[1]]", 1, 6, "arrays `[...]` hold only plain values"),
            ("a = (1 2)", 1, 8, "expected `,` or `)` in the list opened at line 1, column 5"),
            ("a = [1; 2]", 1, 7, "expected `,` or `]` in the array opened at line 1, column 5"),
            ("a = [1,\n", 2, 1, "expected a value, found end of input"),
            ("a = yes", 1, 5, "unquoted value `yes`: strings must be in double quotes"),
            ("1abc = 2", 1, 1, "invalid number `1abc`"),
            ("a = 1\n  @include \"x.jcfg\"", 2, 3, "`@include` is not supported"),
            ("a = 1\n\t\tb = %", 2, 7, "unexpected character `%`"),
        ];
        for (text, line, column, expected) in cases {
            let (got_line, got_column, reason) = syntax_error(text);
            assert!(reason.contains(expected), "{text:?}: {reason:?}");
            assert_eq!((got_line, got_column), (line, column), "{text:?}: {reason}");
        }
        let (_, _, reason) = syntax_error("42 = 1");
        assert_eq!(reason, "expected a setting name, found number `42` (names start with a letter or `*`)");
        let message = parse("a = ").map_err(|e| e.to_string());
        assert_eq!(message, Err("line 1, column 5: expected a value, found end of input".to_owned()));
    }

    #[test]
    fn nesting_is_limited() {
        let deepest = format!("a = {}1{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(parse(&deepest).is_ok());
        let too_deep = format!("a = {}", "{ b = ".repeat(MAX_DEPTH + 1));
        let (line, column, reason) = syntax_error(&too_deep);
        assert_eq!((line, column), (1, 5 + 6 * MAX_DEPTH));
        assert_eq!(reason, format!("nesting deeper than {MAX_DEPTH} levels"));
    }

    #[test]
    fn garbage_never_panics() {
        let sample = concat!(
            "g: { a = 1; b = -0x1FL, c = 2.5e-3; s = \"x\\ty\\x41\" \"z\"; ",
            "l = ( { n = [1, 2] }, (3), /p ) }\n/* c */ room-1: { t = TRUE } # end\n",
        );
        let mut inputs: Vec<String> = [
            "",
            "{",
            "}",
            "(",
            ")",
            "[",
            "]",
            "=",
            ":",
            ";",
            "a",
            "a =",
            "a = {",
            "a = (",
            "a = [",
            "a = [1,",
            "a = \"",
            "a = \"\\",
            "a = \"\\x",
            "a = \"\\x4",
            "a = /*",
            "a = /",
            "@",
            "@include",
            "a = 0x",
            "a = -",
            "a = +",
            "a = .",
            "a = 1e",
            "a = 1.2.3",
            "a = --1",
            "\0",
            "ä = 1",
            "a = 0xFFFFFFFFFFFFFFFFFF",
            "a = 1e999999",
            "a = (,)",
            "a = [,]",
            "a = ((((",
            "a: { b: { c: {",
            "a = \"x\" \"",
            "*",
            "a = 1;;",
            "a = ,",
        ]
        .map(str::to_owned)
        .to_vec();
        // Every prefix and suffix of a valid sample: truncated files.
        let chars: Vec<char> = sample.chars().collect();
        for end in 0..=chars.len() {
            inputs.push(chars.iter().take(end).collect());
            inputs.push(chars.iter().skip(end).collect());
        }
        // Random bytes from a small xorshift generator, deterministic and free
        // of extra dependencies; half of them come from libconfig's alphabet
        // so that inputs get past the first token.
        let alphabet = b"{}[]()=:;,\"\\#/*@-+.0x1eL aZ_\n\t";
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..3000 {
            let length = next() % 80;
            let bytes: Vec<u8> = (0..length)
                .map(|_| {
                    let [byte, flags, ..] = next().to_le_bytes();
                    let pick = usize::from(byte) % alphabet.len();
                    match alphabet.get(pick) {
                        Some(&symbol) if flags & 1 == 0 => symbol,
                        _ => byte,
                    }
                })
                .collect();
            inputs.push(String::from_utf8_lossy(&bytes).into_owned());
        }
        inputs.push(format!("a = {}", "(".repeat(100_000)));
        inputs.push("a = { b = ".repeat(50_000));
        inputs.push("[".repeat(100_000));
        inputs.push("\"".repeat(10_001));
        for input in &inputs {
            let outcome = panic::catch_unwind(|| parse(input).map(|_| ()));
            assert!(outcome.is_ok(), "parse panicked on {input:?}");
        }
    }
}
