//! Who may read the central: the page and the whole read API (everything
//! but `POST /v1/events` and `/healthz`) want HTTP basic auth of a user of
//! `--users-file`; agent tokens may only post. Without a users file, reads
//! are open, and `serve` allows that only on a loopback address.

use super::tokens::Tokens;
use super::users::Users;
use axum::http::{HeaderMap, header};
use base64::Engine;

/// Why a read is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadRefused {
    /// 401: no credentials, or wrong ones.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: an agent's token: agents post, people read.
    #[error(
        "agent tokens may only post events (POST /v1/events); people read with a user of the central's --users-file"
    )]
    AgentToken,
}

/// The credentials a request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Credentials {
    None,
    Bearer(String),
    Basic { user: String, password: String },
    Unreadable,
}

fn credentials(headers: &HeaderMap) -> Credentials {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Credentials::None;
    };
    let Some((scheme, rest)) = value.trim().split_once(' ') else {
        return Credentials::Unreadable;
    };
    if scheme.eq_ignore_ascii_case("bearer") {
        return Credentials::Bearer(rest.trim().to_string());
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return Credentials::Unreadable;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok());
    match decoded.as_deref().and_then(|text| text.split_once(':')) {
        Some((user, password)) => Credentials::Basic {
            user: user.to_string(),
            password: password.to_string(),
        },
        None => Credentials::Unreadable,
    }
}

/// Whether a read with `headers` is allowed.
pub fn may_read(
    users: Option<&Users>,
    tokens: Option<&Tokens>,
    headers: &HeaderMap,
) -> Result<(), ReadRefused> {
    let given = credentials(headers);
    if let (Credentials::Bearer(token), Some(tokens)) = (&given, tokens)
        && tokens.name_of(token).is_some()
    {
        return Err(ReadRefused::AgentToken);
    }
    let Some(users) = users else {
        return Ok(());
    };
    match given {
        Credentials::Basic { user, password } if users.check(&user, &password) => Ok(()),
        Credentials::Basic { user, .. } => Err(ReadRefused::Unauthorized(format!(
            "wrong user or password ({user})"
        ))),
        _ => Err(ReadRefused::Unauthorized(
            "this central wants a user and password (HTTP basic auth) of its --users-file".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(authorization: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = authorization {
            headers.insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(value).expect("header"),
            );
        }
        headers
    }

    fn basic(user: &str, password: &str) -> String {
        let pair = format!("{user}:{password}");
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }

    #[test]
    fn readers_need_a_user_and_agents_only_post() {
        let hash = bcrypt::hash("pw", 4).expect("hash");
        let users = Users::parse(&format!("ann:{hash}\n")).expect("users");
        let tokens = Tokens::parse("kea1 agent-token\n").expect("tokens");
        let cases: [(Option<String>, Result<(), ()>); 6] = [
            (None, Err(())),
            (Some(basic("ann", "pw")), Ok(())),
            (Some(basic("ann", "nope")), Err(())),
            (Some(basic("bob", "pw")), Err(())),
            (Some("Bearer agent-token".into()), Err(())),
            (Some("Digest x".into()), Err(())),
        ];
        for (authorization, expected) in cases {
            let got = may_read(
                Some(&users),
                Some(&tokens),
                &headers(authorization.as_deref()),
            );
            assert_eq!(got.is_ok(), expected.is_ok(), "{authorization:?}: {got:?}");
        }
        assert_eq!(
            may_read(None, Some(&tokens), &headers(Some("Bearer agent-token"))),
            Err(ReadRefused::AgentToken),
            "an agent token never reads, open central or not"
        );
        assert_eq!(may_read(None, Some(&tokens), &headers(None)), Ok(()));
    }
}
