//! Seeded generator of Kea config files in the whole dialect: a valid Dhcp4
//! skeleton, written with every kind of comment in random places, trailing and
//! doubled commas, strings with escapes, odd number forms, includes (nested,
//! absolute and relative, at any token boundary), and sometimes one or two
//! syntax breakers. Semantics stay valid whenever the syntax is, so `kea-dhcp4
//! -t` accepts exactly the syntactically valid ones.

use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

pub use crate::common::rng::Rng;

/// A generated case: the files to write into the case directory, the
/// value the reader must build when it accepts, and what was done to it.
pub struct Case {
    /// Paths relative to the case directory; the first is the main file.
    pub files: Vec<(PathBuf, Vec<u8>)>,
    /// What an accepting reader must produce (comments moved as Kea moves them).
    pub expected: Value,
    /// The syntax breakers and probes applied, for the failure message.
    pub breakers: Vec<&'static str>,
    /// No token was changed, so an accepting reader must build `expected`
    /// (a breaker that happens to leave the syntax valid may change it).
    pub tokens_intact: bool,
}

/// The JSON tree before it is written out; atoms keep their exact lexeme.
enum Node {
    /// `config`: a map of Kea's grammar, where `comment` goes into user-context.
    Map {
        config: bool,
        members: Vec<(Atom, Node)>,
    },
    List(Vec<Node>),
    Atom(Atom),
}

/// A lexeme and the JSON value it stands for.
struct Atom {
    lexeme: String,
    value: Value,
}

fn atom(lexeme: impl Into<String>, value: Value) -> Atom {
    Atom {
        lexeme: lexeme.into(),
        value,
    }
}

/// A map key or string written plainly.
fn plain(text: &str) -> Atom {
    atom(format!("\"{text}\""), Value::String(text.into()))
}

fn member(key: &str, value: Node) -> (Atom, Node) {
    (plain(key), value)
}

fn config_map(members: Vec<(Atom, Node)>) -> Node {
    Node::Map {
        config: true,
        members,
    }
}

impl Node {
    fn value(&self) -> Value {
        match self {
            Node::Atom(atom) => atom.value.clone(),
            Node::List(items) => Value::Array(items.iter().map(Node::value).collect()),
            Node::Map { config, members } => {
                let mut map = Map::new();
                let mut comment = None;
                for (key, node) in members {
                    let key = key.value.as_str().unwrap_or_default().to_string();
                    if *config && key == "comment" {
                        comment = Some(node.value());
                    } else {
                        map.insert(key, node.value());
                    }
                }
                if let Some(comment) = comment {
                    let context = map
                        .entry("user-context")
                        .or_insert_with(|| Value::Object(Map::new()));
                    if let Value::Object(context) = context {
                        context.insert("comment".into(), comment);
                    }
                }
                Value::Object(map)
            }
        }
    }
}

/// Pieces of a JSON string: (as written, as meant).
const STRING_PIECES: &[(&str, &str)] = &[
    ("a", "a"),
    ("Kea", "Kea"),
    (" ", " "),
    ("#", "#"),
    ("//", "//"),
    ("/*", "/*"),
    ("*/", "*/"),
    ("<?include \\\"x\\\"?>", "<?include \"x\"?>"),
    ("{[,:]}", "{[,:]}"),
    ("é", "é"),
    ("😀", "😀"),
    ("\\\"", "\""),
    ("\\\\", "\\"),
    ("\\/", "/"),
    ("\\b", "\u{8}"),
    ("\\f", "\u{c}"),
    ("\\n", "\n"),
    ("\\r", "\r"),
    ("\\t", "\t"),
    ("'", "'"),
    ("\u{7f}", "\u{7f}"),
];

fn string(rng: &mut Rng) -> Atom {
    let mut lexeme = String::from("\"");
    let mut value = String::new();
    for _ in 0..rng.below(6) {
        if rng.percent(15) {
            // \u00XX: Kea takes only these.
            let code = rng.below(256) as u32;
            let hex = if rng.percent(50) { "x" } else { "X" };
            lexeme.push_str(&if hex == "x" {
                format!("\\u{code:04x}")
            } else {
                format!("\\u{code:04X}")
            });
            value.push(char::from_u32(code).unwrap_or('?'));
        } else {
            let (written, meant) = rng.pick(STRING_PIECES);
            lexeme.push_str(written);
            value.push_str(meant);
        }
    }
    lexeme.push('"');
    atom(lexeme, Value::String(value))
}

fn integer(rng: &mut Rng) -> Atom {
    let n: i64 = match rng.below(6) {
        0 => 0,
        1 => i64::MAX,
        2 => i64::MIN,
        3 => -(rng.below(1000) as i64),
        _ => rng.below(100_000) as i64,
    };
    let lexeme = match rng.below(4) {
        // Leading zeros: still an integer to Kea's lexer.
        0 if (0..1_000_000).contains(&n) => format!("00{n}"),
        0 if (-999_999..0).contains(&n) => format!("-00{}", -n),
        _ => n.to_string(),
    };
    atom(lexeme, Value::from(n))
}

/// The float rule `[-+]?[0-9]*\.?[0-9]*([eE][-+]?[0-9]+)?` in its forms.
fn float(rng: &mut Rng) -> Atom {
    let digits = |rng: &mut Rng, max: usize| -> String {
        (0..rng.below(max) + 1)
            .map(|_| char::from(b'0' + rng.below(10) as u8))
            .collect()
    };
    let sign = *rng.pick(&["", "", "-", "+"]);
    let body = match rng.below(5) {
        0 => format!(".{}", digits(rng, 4)),
        1 => format!("{}.", digits(rng, 4)),
        2 => format!("{}.{}", digits(rng, 4), digits(rng, 4)),
        3 => format!("{}e{}", digits(rng, 2), digits(rng, 2)),
        _ => {
            let (whole, fraction) = (digits(rng, 3), digits(rng, 3));
            let (e, exponent_sign) = (*rng.pick(&["e", "E"]), *rng.pick(&["", "-", "+"]));
            format!("{whole}.{fraction}{e}{exponent_sign}{}", digits(rng, 2))
        }
    };
    let lexeme = format!("{sign}{body}");
    let x: f64 = lexeme
        .trim_start_matches('+')
        .parse()
        .expect("generated float parses");
    atom(lexeme, Value::from(x))
}

/// Free-form JSON (user-context): anything goes, keys made unique.
fn free_form(rng: &mut Rng, depth: usize, keys: &mut usize) -> Node {
    let leaf = depth == 0 || rng.percent(45);
    if leaf {
        return Node::Atom(match rng.below(7) {
            0 | 1 => string(rng),
            2 => integer(rng),
            3 => float(rng),
            4 => atom("true", Value::Bool(true)),
            5 => atom("false", Value::Bool(false)),
            _ => atom("null", Value::Null),
        });
    }
    if rng.percent(50) {
        let items = (0..rng.below(4))
            .map(|_| free_form(rng, depth - 1, keys))
            .collect();
        return Node::List(items);
    }
    let members = (0..rng.below(4))
        .map(|_| {
            *keys += 1;
            let mut key = string(rng);
            // Unique, so duplicates (which Kea refuses) never arise.
            key.lexeme
                .insert_str(key.lexeme.len() - 1, &format!("-{keys}"));
            if let Value::String(text) = &mut key.value {
                text.push_str(&format!("-{keys}"));
            }
            (key, free_form(rng, depth - 1, keys))
        })
        .collect();
    Node::Map {
        config: false,
        members,
    }
}

/// A user-context, sometimes nested deep (Kea has no nesting limit short of 128
/// levels, which serde_json's parser has).
fn user_context(rng: &mut Rng, keys: &mut usize) -> Node {
    let mut node = match free_form(rng, 3, keys) {
        map @ Node::Map { .. } => map,
        other => Node::Map {
            config: false,
            members: vec![member("v", other)],
        },
    };
    if rng.percent(5) {
        let mut deep = Node::Atom(atom("1", Value::from(1)));
        for level in 0..rng.below(60) {
            deep = if level % 2 == 0 {
                Node::List(vec![deep])
            } else {
                Node::Map {
                    config: false,
                    members: vec![member("d", deep)],
                }
            };
        }
        if let Node::Map { members, .. } = &mut node {
            members.push(member("deep", deep));
        }
    }
    node
}

/// `comment` and `user-context` members a config map may carry.
fn annotations(rng: &mut Rng, keys: &mut usize) -> Vec<(Atom, Node)> {
    let mut members = Vec::new();
    if rng.percent(30) {
        members.push(member("comment", Node::Atom(string(rng))));
    }
    if rng.percent(30) {
        members.push(member("user-context", user_context(rng, keys)));
    }
    members
}

fn shuffle<T>(rng: &mut Rng, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        items.swap(i, rng.below(i + 1));
    }
}

fn subnet(rng: &mut Rng, id: usize, keys: &mut usize) -> Node {
    let mut members = vec![
        member("id", Node::Atom(atom(id.to_string(), Value::from(id)))),
        member("subnet", Node::Atom(plain(&format!("192.0.{id}.0/24")))),
    ];
    if rng.percent(70) {
        let mut pool = vec![member(
            "pool",
            Node::Atom(plain(&format!("192.0.{id}.10 - 192.0.{id}.20"))),
        )];
        pool.extend(annotations(rng, keys));
        members.push(member("pools", Node::List(vec![config_map(pool)])));
    }
    if rng.percent(40) {
        let mut option = vec![
            member("name", Node::Atom(plain("domain-name"))),
            member("data", Node::Atom(plain("example.org"))),
        ];
        option.extend(annotations(rng, keys));
        members.push(member("option-data", Node::List(vec![config_map(option)])));
    }
    members.extend(annotations(rng, keys));
    shuffle(rng, &mut members);
    config_map(members)
}

/// `{"Dhcp4": {...}}`: no interfaces, a memfile that is not persisted, and a
/// random choice of the rest.
fn document(rng: &mut Rng) -> Node {
    let mut keys = 0;
    let mut dhcp4 = vec![
        member(
            "interfaces-config",
            config_map(vec![member("interfaces", Node::List(Vec::new()))]),
        ),
        member(
            "lease-database",
            config_map(vec![
                member("type", Node::Atom(plain("memfile"))),
                member("persist", Node::Atom(atom("false", Value::Bool(false)))),
            ]),
        ),
    ];
    if rng.percent(60) {
        let lexeme = *rng.pick(&["4000", "04000", "0004000"]);
        dhcp4.push(member(
            "valid-lifetime",
            Node::Atom(atom(lexeme, Value::from(4000))),
        ));
    }
    if rng.percent(30) {
        dhcp4.push(member(
            "renew-timer",
            Node::Atom(atom("1000", Value::from(1000))),
        ));
    }
    if rng.percent(30) {
        let (lexeme, x) = *rng.pick(&[(".5", 0.5), ("0.5", 0.5), ("5e-1", 0.5), ("+.5", 0.5)]);
        dhcp4.push(member(
            "t1-percent",
            Node::Atom(atom(lexeme, Value::from(x))),
        ));
    }
    if rng.percent(50) {
        let subnets = (1..=rng.below(4))
            .map(|id| subnet(rng, id, &mut keys))
            .collect();
        dhcp4.push(member("subnet4", Node::List(subnets)));
    }
    if rng.percent(30) {
        dhcp4.push(member(
            "option-data",
            Node::List(vec![config_map(vec![
                member("name", Node::Atom(plain("domain-name-servers"))),
                member("data", Node::Atom(plain("192.0.2.1, 192.0.2.2"))),
            ])]),
        ));
    }
    dhcp4.extend(annotations(rng, &mut keys));
    shuffle(rng, &mut dhcp4);
    config_map(vec![member("Dhcp4", config_map(dhcp4))])
}

/// Writes the tree as lexemes; trailing and doubled commas where Kea allows them.
fn tokens(rng: &mut Rng, node: &Node, out: &mut Vec<String>) {
    let extra_commas = |rng: &mut Rng, out: &mut Vec<String>| {
        if rng.percent(8) {
            out.push(",".into());
        }
    };
    match node {
        Node::Atom(atom) => out.push(atom.lexeme.clone()),
        Node::List(items) => {
            out.push("[".into());
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(",".into());
                    extra_commas(rng, out);
                }
                tokens(rng, item, out);
            }
            if !items.is_empty() && rng.percent(15) {
                out.push(",".into());
            }
            out.push("]".into());
        }
        Node::Map { members, .. } => {
            out.push("{".into());
            for (i, (key, value)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(",".into());
                    extra_commas(rng, out);
                }
                out.push(key.lexeme.clone());
                out.push(":".into());
                tokens(rng, value, out);
            }
            if !members.is_empty() && rng.percent(15) {
                out.push(",".into());
            }
            out.push("}".into());
        }
    }
}

/// Bytes between tokens: whitespace and the three comment kinds, with
/// comment bodies that hold JSON, directives and bytes that are not UTF-8.
fn trivia(rng: &mut Rng) -> Vec<u8> {
    const BODIES: &[&[u8]] = &[
        b"",
        b" text",
        b" \"quoted\" { [ , : ",
        b" <?include \"nowhere\"?> ",
        b" # // /* nested opener",
        b" caf\xc3\xa9 \xff\xfe not UTF-8",
        b" tab\there",
        b" NUL \x00 inside",
        b" /",
        b" *",
    ];
    let mut out = Vec::new();
    for _ in 0..rng.below(3) {
        let body = *rng.pick(BODIES);
        match rng.below(9) {
            0 => out.push(b' '),
            1 => out.push(b'\t'),
            2 => out.push(b'\n'),
            3 => out.extend_from_slice(b"\r\n  "),
            4 => {
                out.push(b'#');
                out.extend_from_slice(body);
                out.push(b'\n');
            }
            5 => {
                out.extend_from_slice(b"//");
                out.extend_from_slice(body);
                out.push(b'\n');
            }
            6 => {
                out.extend_from_slice(b"/*");
                out.extend_from_slice(body);
                const TAILS: [&[u8]; 4] = [b"", b"\nline two\n", b"*", b"**"];
                let tail = *rng.pick(&TAILS);
                out.extend_from_slice(tail);
                out.extend_from_slice(b"*/");
            }
            7 => out.extend_from_slice(b"/**/"),
            _ => out.extend_from_slice(b"/*/ */"),
        }
    }
    out
}

/// One item of a file: a token, or an include directive of another file.
enum Item {
    Token(String),
    Include { path: String, directive: Directive },
}

/// How a directive is written; the broken forms are syntax breakers.
#[derive(Clone, Copy, PartialEq)]
enum Directive {
    Good,
    Unclosed,
    CommentInside,
    Misspelt,
    Unquoted,
}

/// The files of a case as items, before trivia; index 0 is the main file.
struct Files {
    dir: PathBuf,
    names: Vec<PathBuf>,
    items: Vec<Vec<Item>>,
}

impl Files {
    /// A new include file holding `items`; returns how a directive names it.
    fn add(&mut self, rng: &mut Rng, items: Vec<Item>) -> String {
        let n = self.names.len();
        let name = match rng.below(4) {
            0 => PathBuf::from(format!("sub/i{n}.inc")),
            1 => PathBuf::from(format!("with space/i {n}.inc")),
            _ => PathBuf::from(format!("i{n}.inc")),
        };
        let written = match rng.below(3) {
            0 => self.dir.join(&name).display().to_string(),
            1 => format!("./{}", name.display()),
            _ => name.display().to_string(),
        };
        self.names.push(name);
        self.items.push(items);
        written
    }

    /// Moves a random run of items of file `file` (at nesting `depth`) into a
    /// new file included in their place; recurses into it now and then.
    fn split(&mut self, rng: &mut Rng, file: usize, depth: usize) {
        let len = self.items[file].len();
        let start = rng.below(len + 1);
        let end = start
            + rng
                .below(len - start + 1)
                .min(if rng.percent(20) { len } else { 12 });
        let moved: Vec<Item> = self.items[file].drain(start..end).collect();
        let path = self.add(rng, moved);
        let new = self.names.len() - 1;
        self.items[file].insert(
            start,
            Item::Include {
                path,
                directive: Directive::Good,
            },
        );
        if depth < 4 && rng.percent(40) {
            self.split(rng, new, depth + 1);
        }
    }
}

/// A lexeme Kea's lexer refuses (or, for the probes, may refuse).
const BAD_ATOMS: &[(&str, &str)] = &[
    ("True", "keyword in capitals"),
    ("NULL", "keyword in capitals"),
    ("nul", "truncated keyword"),
    ("1e999", "float out of range"),
    ("-1e999", "float out of range"),
    ("99999999999999999999", "integer out of range"),
    ("-9223372036854775809", "integer out of range"),
    ("\"\\x41\"", "bad escape"),
    ("\"\\u0100\"", "unicode escape above 0xff"),
    ("\"\\u00g0\"", "bad unicode escape"),
    ("\"\\u12\"", "short unicode escape"),
    ("\"tab\there\"", "raw tab in string"),
    ("'single'", "single quotes"),
    ("@", "invalid character"),
    (".", "lone dot"),
    ("-", "lone minus"),
    ("/", "lone slash"),
    ("0x10", "hex number"),
    ("\"unterminated\n", "unterminated string"),
    ("\u{feff}", "byte order mark"),
    ("\u{c}", "form feed as a blank"),
    ("\u{a0}", "no-break space as a blank"),
];

/// Applies token-level breakers, each named in `applied`.
fn break_tokens(rng: &mut Rng, tokens: &mut Vec<String>, applied: &mut Vec<&'static str>) {
    let positions = |tokens: &[String], wanted: &[&str]| -> Vec<usize> {
        (0..tokens.len())
            .filter(|&i| wanted.contains(&tokens[i].as_str()))
            .collect()
    };
    match rng.below(6) {
        0 => {
            let brackets = positions(tokens, &["{", "}", "[", "]"]);
            tokens.remove(*rng.pick(&brackets));
            applied.push("a bracket dropped");
        }
        1 => {
            let opens = positions(tokens, &["{", "["]);
            tokens.insert(*rng.pick(&opens) + 1, ",".into());
            applied.push("comma after an opening bracket");
        }
        2 => {
            tokens.push(rng.pick(&["}", "1", "{}"]).to_string());
            applied.push("a token after the document");
        }
        3 => {
            let colons = positions(tokens, &[":"]);
            tokens.remove(*rng.pick(&colons));
            applied.push("a colon dropped");
        }
        _ => {
            let (lexeme, name) = *rng.pick(BAD_ATOMS);
            // Blanks around, or it could merge with a neighbour ("1000" ".").
            let lexeme = format!(" {lexeme} ");
            let at = rng.below(tokens.len() + 1);
            if at < tokens.len()
                && !matches!(tokens[at].as_str(), "{" | "}" | "[" | "]" | "," | ":")
            {
                tokens[at] = lexeme;
            } else {
                tokens.insert(at, lexeme);
            }
            applied.push(name);
        }
    }
}

const SPLIT_TOKEN: &str = "a token split across files";

/// Applies include-level breakers (and the depth probe, which is one only
/// past Kea's limit).
fn break_includes(rng: &mut Rng, files: &mut Files, applied: &mut Vec<&'static str>) {
    let file = rng.below(files.items.len());
    let at = rng.below(files.items[file].len() + 1);
    let directive = |path: String, directive| Item::Include { path, directive };
    match rng.below(8) {
        6 => {
            // A token begun in an include file and ended after the directive:
            // Kea's lexer never joins tokens across files.
            let splittable: Vec<usize> = (0..files.items[file].len())
                .filter(
                    |&i| matches!(&files.items[file][i], Item::Token(t) if t.chars().count() > 1),
                )
                .collect();
            let Some(&i) = splittable.get(rng.below(splittable.len().max(1))) else {
                return;
            };
            let Item::Token(token) = files.items[file].remove(i) else {
                return;
            };
            let chars: Vec<char> = token.chars().collect();
            let cut = 1 + rng.below(chars.len() - 1);
            let head: String = chars[..cut].iter().collect();
            let tail: String = chars[cut..].iter().collect();
            let path = files.add(rng, vec![Item::Token(head)]);
            files.items[file].splice(i..i, [directive(path, Directive::Good), Item::Token(tail)]);
            applied.push(SPLIT_TOKEN);
        }
        0 => {
            files.items[file].insert(at, directive("missing.inc".into(), Directive::Good));
            applied.push("include of a missing file");
        }
        1 => {
            files.items[file].insert(at, directive(String::new(), Directive::Good));
            applied.push("empty include path");
        }
        2 => {
            files.items[file].insert(at, directive(".".into(), Directive::Good));
            applied.push("include of a directory");
        }
        3 => {
            let broken = *rng.pick(&[
                Directive::Unclosed,
                Directive::CommentInside,
                Directive::Misspelt,
                Directive::Unquoted,
            ]);
            let path = files.add(rng, Vec::new());
            files.items[file].insert(at, directive(path, broken));
            applied.push("malformed directive");
        }
        4 => {
            // The file includes itself (Kea: depth limit; the reader: a cycle).
            if file == 0 {
                files.items[0].insert(at, directive("main.json".into(), Directive::Good));
            } else {
                let name = files.names[file].display().to_string();
                files.items[file].insert(at, directive(name, Directive::Good));
            }
            applied.push("include cycle");
        }
        _ => {
            // A chain of 9 to 13 files around a run of tokens: past 11 open
            // includes Kea refuses (the nesting already there counts too).
            let links = 9 + rng.below(5);
            let len = files.items[file].len();
            let end = at + rng.below(len - at + 1).min(6);
            let mut inner: Vec<Item> = files.items[file].drain(at..end).collect();
            for _ in 0..links {
                let path = files.add(rng, inner);
                inner = vec![directive(path, Directive::Good)];
            }
            files.items[file].splice(at..at, inner);
            applied.push("deep include chain (a breaker past 11 levels)");
        }
    }
}

fn directive_text(rng: &mut Rng, path: &str, directive: Directive) -> Vec<u8> {
    const BLANKS: [&str; 6] = ["", "", " ", "\t", "\n", " \r\n "];
    let blanks = |rng: &mut Rng| BLANKS[rng.below(BLANKS.len())];
    let mut out = String::new();
    out.push_str("<?");
    out.push_str(blanks(rng));
    out.push_str(if directive == Directive::Misspelt {
        "inclde"
    } else {
        "include"
    });
    out.push_str(blanks(rng));
    if directive == Directive::Unquoted {
        out.push_str(path);
    } else {
        out.push('"');
        out.push_str(path);
        out.push('"');
    }
    match directive {
        Directive::CommentInside => out.push_str(" /* no */ "),
        _ => out.push_str(blanks(rng)),
    }
    if directive != Directive::Unclosed {
        out.push_str("?>");
    }
    out.into_bytes()
}

fn render(rng: &mut Rng, items: &[Item]) -> Vec<u8> {
    let mut out = trivia(rng);
    for item in items {
        match item {
            Item::Token(token) => out.extend_from_slice(token.as_bytes()),
            Item::Include { path, directive } => {
                out.extend(directive_text(rng, path, *directive));
            }
        }
        out.extend(trivia(rng));
    }
    if rng.percent(10) {
        // A line comment closed by the end of the file, not a newline.
        out.extend_from_slice(b"# last line");
    }
    out
}

/// The case of `seed`, whose files will live in `dir` (absolute include
/// paths point there).
pub fn case(seed: u64, dir: &Path) -> Case {
    let mut rng = Rng::new(seed);
    let tree = document(&mut rng);
    let expected = tree.value();
    let mut lexemes = Vec::new();
    tokens(&mut rng, &tree, &mut lexemes);

    let mut breakers = Vec::new();
    let broken = rng.percent(40);
    let tokens_intact = !(broken && rng.percent(60));
    if !tokens_intact {
        break_tokens(&mut rng, &mut lexemes, &mut breakers);
    }
    let mut files = Files {
        dir: dir.to_path_buf(),
        names: vec![PathBuf::from("main.json")],
        items: vec![lexemes.into_iter().map(Item::Token).collect()],
    };
    for _ in 0..rng.below(4) {
        let file = rng.below(files.items.len());
        files.split(&mut rng, file, 1);
    }
    let mut tokens_intact = tokens_intact;
    if (broken && breakers.is_empty()) || rng.percent(10) {
        break_includes(&mut rng, &mut files, &mut breakers);
        tokens_intact &= !breakers.contains(&SPLIT_TOKEN);
    }

    let mut rendered: Vec<(PathBuf, Vec<u8>)> = files
        .names
        .iter()
        .zip(&files.items)
        .map(|(name, items)| (name.clone(), render(&mut rng, items)))
        .collect();
    if broken && rng.percent(15) {
        let n = rng.below(rendered.len());
        // After a newline: a line comment at the end would swallow it.
        rendered[n].1.extend_from_slice(b"\n/* never closed");
        breakers.push("unterminated comment");
    }
    Case {
        files: rendered,
        expected,
        breakers,
        tokens_intact,
    }
}
