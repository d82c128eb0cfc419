//! `<?include "path"?>`: lexical splicing, path resolution, limits and errors.

use std::io;
use std::path::Path;

use super::Tree;
use crate::dialect::{DialectError, Style, expand_file, expand_str};

#[test]
fn includes_splice_fragments_into_maps_and_lists() {
    let tree = Tree::new(&[
        (
            "main.conf",
            "{ \"Dhcp4\": {\n  <?include \"globals.conf\"?>\n  \"subnet4\": [ <?include \"subnets.conf\"?> ]\n} }",
        ),
        // Fragments, not documents: a map member with its comma, list elements.
        (
            "globals.conf",
            "\"valid-lifetime\": 4000, # fragment\n<?include \"timers.conf\"?>",
        ),
        (
            "timers.conf",
            "\"renew-timer\": 1000, \"rebind-timer\": 2000,",
        ),
        (
            "subnets.conf",
            "{ \"id\": 1 }, <?include \"more-subnets.conf\"?>",
        ),
        ("more-subnets.conf", "{ \"id\": 2 }"),
    ]);
    let expanded = tree.expand("main.conf").expect("accepted");
    assert_eq!(
        expanded.json,
        r#"{"Dhcp4":{"valid-lifetime":4000,"renew-timer":1000,"rebind-timer":2000,"subnet4":[{"id":1},{"id":2}]}}"#
    );
    let names = [
        "main.conf",
        "globals.conf",
        "timers.conf",
        "subnets.conf",
        "more-subnets.conf",
    ];
    let expected: Vec<_> = names.iter().map(|n| tree.path(n)).collect();
    assert_eq!(expanded.files, expected);
    assert!(expanded.warnings.is_empty(), "{:?}", expanded.warnings);
}

#[test]
fn directive_allows_whitespace_and_newlines_but_nothing_else() {
    let tree = Tree::new(&[("frag.conf", "\"a\": 1,")]);
    let accepted = [
        "{<?include \"frag.conf\"?>\"b\": 2}",
        "{ <?\n  include\r\n\t\"frag.conf\"\n  ?> \"b\": 2 }",
    ];
    for text in accepted {
        tree.write("main.conf", text);
        assert_eq!(tree.json("main.conf"), r#"{"a":1,"b":2}"#, "main {text:?}");
    }
    let refused = [
        (
            "{ <? /*c*/ include \"frag.conf\"?> }",
            "main.conf:1:6: expected 'include' after '<?', found '/'",
        ),
        (
            "{ <?INCLUDE \"frag.conf\"?> }",
            "main.conf:1:5: expected 'include' after '<?', found 'I'",
        ),
        (
            "{ < ?include \"frag.conf\"?> }",
            "main.conf:1:3: invalid character '<'",
        ),
        (
            "{ <?include frag.conf?> }",
            "main.conf:1:13: expected '\"' starting the include path, found 'f'",
        ),
        ("{ <?include \"\"?> }", "main.conf:1:13: empty include path"),
        (
            "{ <?include \"frag\n.conf\"?> }",
            "main.conf:1:13: include path not closed on its line",
        ),
        (
            "{ <?include \"frag.conf\" # c\n?> \"b\": 2 }",
            "main.conf:1:25: expected '?>' closing the include directive, found '#'",
        ),
        (
            "{ <?include \"frag.conf\" \"b\": 2 }",
            "main.conf:1:25: expected '?>' closing the include directive, found '\"'",
        ),
        (
            "{ <?include \"frag.conf\"",
            "main.conf:1:24: expected '?>' closing the include directive, found end of file (directive not closed)",
        ),
        (
            "{ <?include",
            "main.conf:1:12: expected '\"' starting the include path, found end of file (directive not closed)",
        ),
    ];
    for (text, expected) in refused {
        tree.write("main.conf", text);
        let message = tree.error("main.conf").to_string();
        let expected = format!("{}/{expected}", tree.dir.path().display());
        assert_eq!(message, expected, "main {text:?}");
    }
}

#[test]
fn relative_includes_resolve_against_include_base_not_the_including_file() {
    let tree = Tree::new(&[
        ("etc/kea/main.conf", "{ <?include \"frag.conf\"?> }"),
        ("etc/kea/frag.conf", "\"next-to-main\": true"),
        ("frag.conf", "\"in-base\": true"),
    ]);
    let expanded = tree.expand("etc/kea/main.conf").expect("accepted");
    assert_eq!(expanded.json, r#"{"in-base":true}"#);
    assert_eq!(
        expanded.files,
        [tree.path("etc/kea/main.conf"), tree.path("frag.conf")]
    );

    // Absolute paths are used as they are, whatever the base.
    let absolute = tree.path("etc/kea/frag.conf");
    let text = format!("{{ <?include \"{}\"?> }}", absolute.display());
    let expanded = expand_str(
        Path::new("inline"),
        text.as_bytes(),
        Path::new("/nonexistent"),
        Style::Compact,
    )
    .expect("accepted");
    assert_eq!(expanded.json, r#"{"next-to-main":true}"#);
    assert_eq!(
        expanded.files,
        [Path::new("inline").to_path_buf(), absolute]
    );
}

#[test]
fn files_lists_each_file_once_in_order_of_first_opening() {
    let tree = Tree::new(&[
        (
            "main.conf",
            "[ <?include \"a.conf\"?>, <?include \"b.conf\"?>, <?include \"./a.conf\"?> ]",
        ),
        ("a.conf", "\"a\""),
        ("b.conf", "<?include \"a.conf\"?>, \"b\""),
    ]);
    let expanded = tree.expand("main.conf").expect("accepted");
    assert_eq!(expanded.json, r#"["a","a","b","a"]"#);
    assert_eq!(
        expanded.files,
        [
            tree.path("main.conf"),
            tree.path("a.conf"),
            tree.path("b.conf")
        ]
    );
}

/// A chain main -> d1 -> ... -> dN, dN holding a map member.
fn chain(n: usize) -> Tree {
    let tree = Tree::new(&[("main.conf", "{ <?include \"d1.conf\"?> }")]);
    for i in 1..=n {
        let text = if i < n {
            format!("<?include \"d{}.conf\"?>", i + 1)
        } else {
            "\"valid-lifetime\": 5".to_string()
        };
        tree.write(&format!("d{i}.conf"), &text);
    }
    tree
}

#[test]
fn eleven_nested_includes_are_accepted_a_twelfth_is_refused() {
    let tree = chain(11);
    let expanded = tree.expand("main.conf").expect("11 nested includes");
    assert_eq!(expanded.json, r#"{"valid-lifetime":5}"#);
    assert_eq!(expanded.files.len(), 12);

    let tree = chain(12);
    let err = tree.error("main.conf");
    let DialectError::IncludeDepth {
        at,
        written,
        included_from,
    } = &err
    else {
        panic!("expected a depth error, got {err}");
    };
    assert_eq!(at.path, tree.path("d11.conf"));
    assert_eq!(written, "d12.conf");
    assert_eq!(included_from.0.len(), 11);
    assert_eq!(included_from.0[10].path, tree.path("main.conf"));
    assert!(
        err.to_string()
            .contains("too many nested includes (Kea allows 11)"),
        "{err}"
    );
}

#[test]
fn include_cycles_are_refused_naming_the_chain() {
    let tree = Tree::new(&[
        ("self.conf", "[ 1, <?include \"self.conf\"?> ]"),
        ("a.conf", "{ <?include \"b.conf\"?> }"),
        ("b.conf", "\"x\": <?include \"sub/../a.conf\"?>"),
    ]);
    let err = tree.error("self.conf");
    assert!(matches!(err, DialectError::IncludeCycle { .. }), "{err}");
    let p = |name: &str| tree.path(name).display().to_string();
    assert_eq!(
        err.to_string(),
        format!(
            "{}:1:6: include cycle: {} -> {}",
            p("self.conf"),
            p("self.conf"),
            p("self.conf")
        )
    );

    std::fs::create_dir(tree.path("sub")).expect("mkdir");
    let err = tree.error("a.conf");
    assert_eq!(
        err.to_string(),
        format!(
            "{}:1:6: include cycle: {} -> {} -> {} (included from {}:1:3)",
            p("b.conf"),
            p("a.conf"),
            p("b.conf"),
            p("sub/../a.conf"),
            p("a.conf")
        )
    );
}

#[test]
fn missing_include_names_file_line_column_paths_and_cause() {
    let tree = Tree::new(&[(
        "main.conf",
        "{\n  \"a\": 1,\n  <?include \"missing.conf\"?>\n}",
    )]);
    let err = tree.error("main.conf");
    let DialectError::Include {
        at,
        written,
        resolved,
        source,
        included_from,
    } = &err
    else {
        panic!("expected an include error, got {err}");
    };
    assert_eq!(
        (at.path.clone(), at.line, at.col),
        (tree.path("main.conf"), 3, 3)
    );
    assert_eq!(written, "missing.conf");
    assert_eq!(resolved, &tree.path("missing.conf"));
    assert_eq!(source.kind(), io::ErrorKind::NotFound);
    assert!(included_from.0.is_empty());
    let shown = err.to_string();
    for part in [
        format!("{}:3:3:", tree.path("main.conf").display()),
        "\"missing.conf\"".to_string(),
        tree.path("missing.conf").display().to_string(),
        source.to_string(),
    ] {
        assert!(shown.contains(&part), "{shown:?} lacks {part:?}");
    }
}

#[test]
fn missing_top_level_file_is_a_read_error() {
    let tree = Tree::new(&[]);
    let err = tree.error("absent.conf");
    assert!(matches!(&err, DialectError::Read { path, .. } if path == &tree.path("absent.conf")));
}

#[test]
fn errors_inside_includes_name_the_include_sites() {
    let tree = Tree::new(&[
        ("main.conf", "{\n<?include \"outer.conf\"?> }"),
        ("outer.conf", "  \"a\": 1,\n  <?include \"inner.conf\"?>"),
        ("inner.conf", "\"b\" 2"),
    ]);
    let p = |name: &str| tree.path(name).display().to_string();
    assert_eq!(
        tree.error("main.conf").to_string(),
        format!(
            "{}:1:5: expected ':' after map key, found integer 2 (included from {}:2:3, from {}:2:1)",
            p("inner.conf"),
            p("outer.conf"),
            p("main.conf")
        )
    );
}

#[test]
fn tokens_do_not_cross_file_boundaries() {
    let tree = Tree::new(&[
        ("string.conf", "{ <?include \"open-string.conf\"?> b\": 1 }"),
        ("open-string.conf", "\"a"),
        ("comment.conf", "{ <?include \"open-comment.conf\"?> */ }"),
        ("open-comment.conf", "\"a\": 1 /* "),
    ]);
    let p = |name: &str| tree.path(name).display().to_string();
    assert_eq!(
        tree.error("string.conf").to_string(),
        format!(
            "{}:1:1: unterminated string (included from {}:1:3)",
            p("open-string.conf"),
            p("string.conf")
        )
    );
    assert_eq!(
        tree.error("comment.conf").to_string(),
        format!(
            "{}:1:8: comment not closed ('/*' opened at line 1) (included from {}:1:3)",
            p("open-comment.conf"),
            p("comment.conf")
        )
    );
}

#[test]
fn warnings_point_into_the_included_file() {
    let tree = Tree::new(&[
        ("main.conf", "{\n  <?include \"frag.conf\"?>\n}"),
        ("frag.conf", "\"a\": 1,"),
    ]);
    let expanded = tree.expand("main.conf").expect("accepted");
    assert_eq!(expanded.json, r#"{"a":1}"#);
    let shown: Vec<String> = expanded.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        shown,
        [format!(
            "{}:1:7: extraneous comma",
            tree.path("frag.conf").display()
        )]
    );
}

#[test]
fn in_memory_text_reads_includes_from_disk() {
    let tree = Tree::new(&[("frag.conf", "\"a\": 1")]);
    let expanded = expand_str(
        Path::new("/etc/kea/kea-dhcp4.conf"),
        b"{ <?include \"frag.conf\"?> }",
        tree.dir.path(),
        Style::Pretty,
    )
    .expect("accepted");
    assert_eq!(expanded.json, "{\n  \"a\": 1\n}");
    assert_eq!(
        expanded.files,
        [
            Path::new("/etc/kea/kea-dhcp4.conf").to_path_buf(),
            tree.path("frag.conf")
        ]
    );
    let file = expand_file(&tree.path("frag.conf"), tree.dir.path(), Style::Compact);
    assert!(file.is_err(), "a lone member is not a JSON value");
}
