//! HTML building blocks: escaping (every piece of user data goes through
//! `escape`), URL path segments, the page frame and its stylesheet.

use std::fmt::Write;

/// `text` safe inside HTML text and double-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` as one URL path segment (percent-encoded except unreserved characters).
pub fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// The page path of a server and service.
pub fn server_href(server: &str, service: &str) -> String {
    format!("/servers/{}/{}", segment(server), segment(service))
}

/// At most `max` characters of `text`, with `…` when cut.
pub fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((end, _)) => format!("{}…", &text[..end]),
    }
}

/// How long ago `then` was, seen at `now` (both Unix milliseconds).
pub fn ago(now: i64, then: i64) -> String {
    let seconds = (now - then).max(0) / 1000;
    match seconds {
        0..=59 => format!("{seconds} s ago"),
        60..=3599 => format!("{} min ago", seconds / 60),
        3600..=86_399 => format!("{} h ago", seconds / 3600),
        _ => format!("{} days ago", seconds / 86_400),
    }
}

/// A whole page: `title` is escaped here, `body` must already be HTML.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · kea-sync-central</title><style>{STYLE}</style></head>\
         <body><header><a href=\"/\">kea-sync-central</a> · <a href=\"/ha\">HA pairs</a></header><main>{body}</main></body></html>\n",
        escape(title)
    )
}

const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;margin:0;color:#1d2329;background:#f5f6f8}
header{background:#1f3a5f;padding:10px 24px}header a{color:#fff;font-weight:600;text-decoration:none;font-size:16px}
main{padding:16px 24px;max-width:1400px}h1{font-size:22px;margin:8px 0 12px}h2{font-size:17px;margin:22px 0 8px}
table{border-collapse:collapse;background:#fff;width:100%;box-shadow:0 1px 2px #0002}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid #e3e6ea;vertical-align:top}
th{background:#eef1f5;font-weight:600;font-size:13px}a{color:#1f5fa8}
.pill{display:inline-block;padding:1px 9px;border-radius:10px;color:#fff;font-size:12px;font-weight:600;white-space:nowrap}
.ok{background:#2e7d32}.drift{background:#e6a100}.rejected{background:#c62828}.silent{background:#78828c}.new{background:#1f6fb5}
.applied{background:#2e7d32}.snapshot{background:#1f6fb5}
.added{color:#1b6b21}.removed{color:#b3261e}.changed{color:#8a5a00}
.mono{font-family:'DejaVu Sans Mono',Menlo,Consolas,monospace;font-size:12px;word-break:break-all}
.muted{color:#66707a}.facts td:first-child{width:160px;color:#66707a}
.counts span{margin-right:14px}.summary{font-weight:600;margin-bottom:2px}.followers summary{cursor:pointer;color:#66707a}.followers ul{margin:4px 0 0 18px;padding:0}form{margin:8px 0}select,button{font:inherit;padding:2px 6px}
table.diff{table-layout:fixed}table.diff th:nth-child(1){width:95px}table.diff th:nth-child(2){width:42%}.diff td:first-child{white-space:nowrap}
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<b a="1">'&'</b>"#),
            "&lt;b a=&quot;1&quot;&gt;&#39;&amp;&#39;&lt;/b&gt;"
        );
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(segment("kea 1/a?b"), "kea%201%2Fa%3Fb");
        assert_eq!(
            server_href("kea-1.lab", "dhcp4"),
            "/servers/kea-1.lab/dhcp4"
        );
    }

    #[test]
    fn shorten_and_ago() {
        assert_eq!(shorten("abcdef", 3), "abc…");
        assert_eq!(shorten("abc", 3), "abc");
        assert_eq!(shorten("ééé", 2), "éé…");
        assert_eq!(ago(10_000, 4_000), "6 s ago");
        assert_eq!(ago(7_200_000, 0), "2 h ago");
    }

    #[test]
    fn the_title_is_escaped() {
        assert!(page("<x>", "").contains("<title>&lt;x&gt; · kea-sync-central</title>"));
    }
}
