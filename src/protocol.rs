//! The client protocol codec (docs/protocol.md): parse client requests
//! ([`request`]), encode server replies ([`reply`]). Pure functions: no
//! sockets, no clock.

pub mod binary;
pub mod reply;
pub mod request;

pub use crate::fanout::Priority;
pub use reply::*;
pub use request::*;

#[cfg(test)]
mod tests {
    use super::*;
    use tickgate_feeds::Symbol;

    fn code_of(text: &str) -> ErrorCode {
        parse_request(text).expect_err("should fail").code
    }

    #[test]
    fn parses_the_three_ops_and_ignores_unknown_fields() {
        assert_eq!(
            parse_request(
                r#"{"op":"subscribe","symbols":["AAPL","MSFT"],"id":1,"extra":{"x":[1]}}"#
            ),
            Ok(Request::Subscribe {
                id: Some(RequestId::Number(1.into())),
                symbols: vec!["AAPL".into(), "MSFT".into()],
                options: SubscribeOptions::default(),
            })
        );
        assert_eq!(
            parse_request(r#"{"op":"unsubscribe","symbols":["AAPL"],"id":"a"}"#),
            Ok(Request::Unsubscribe {
                id: Some(RequestId::Text("a".into())),
                symbols: vec!["AAPL".into()]
            })
        );
        assert_eq!(
            parse_request(r#"{"op":"ping"}"#),
            Ok(Request::Ping { id: None })
        );
    }

    #[test]
    fn malformed_requests_are_bad_request_with_the_id_when_readable() {
        for text in [
            "",
            "not json",
            "[1,2]",
            "\"subscribe\"",
            "{\"op\":",
            r#"{"symbols":["A"]}"#,
            r#"{"op":7}"#,
            r#"{"op":"subscribe"}"#,
            r#"{"op":"subscribe","symbols":"AAPL"}"#,
            r#"{"op":"subscribe","symbols":[1,2]}"#,
            r#"{"op":"subscribe","symbols":[]}"#,
            r#"{"op":"ping","id":{"a":1}}"#,
            r#"{"op":"ping","id":[1]}"#,
        ] {
            assert_eq!(code_of(text), ErrorCode::BadRequest, "{text}");
        }
        let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(code_of(&nested), ErrorCode::BadRequest);
        let err = parse_request(r#"{"op":"subscribe","symbols":"X","id":9}"#).expect_err("bad");
        assert_eq!(err.id, Some(RequestId::Number(9.into())));
        assert_eq!(
            code_of(&format!(r#"{{"op":"ping","id":"{}"}}"#, "x".repeat(200))),
            ErrorCode::BadRequest
        );
    }

    #[test]
    fn unknown_op_is_its_own_code() {
        assert_eq!(code_of(r#"{"op":"buy","id":1}"#), ErrorCode::UnknownOp);
    }

    #[test]
    fn auth_op_carries_a_token_string() {
        assert_eq!(
            parse_request(r#"{"op":"auth","token":"a.b.c","id":4}"#),
            Ok(Request::Auth {
                id: Some(RequestId::Number(4.into())),
                token: "a.b.c".into()
            })
        );
        for text in [
            r#"{"op":"auth"}"#,
            r#"{"op":"auth","token":""}"#,
            r#"{"op":"auth","token":7}"#,
        ] {
            assert_eq!(code_of(text), ErrorCode::BadRequest, "{text}");
        }
    }

    #[test]
    fn symbols_are_validated_deduplicated_and_echo_is_bounded() {
        let texts: Vec<String> = ["AAPL", "AAPL", "??", "MSFT", &"Z".repeat(100)]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let list = parse_symbols(&texts);
        assert_eq!(
            list.valid.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            ["AAPL", "MSFT"]
        );
        assert_eq!(list.invalid, vec!["??".to_owned(), "Z".repeat(40)]);
    }

    #[test]
    fn replies_match_the_contract() {
        let id = RequestId::Number(1.into());
        let aapl = Symbol::parse("AAPL").expect("valid");
        assert_eq!(
            subscribed(Some(&id), &[aapl], &[], "00c0ffee"),
            r#"{"type":"subscribed","id":1,"symbols":["AAPL"],"epoch":"00c0ffee"}"#
        );
        assert_eq!(
            subscribed(None, &[aapl], &[aapl], "e"),
            r#"{"type":"subscribed","symbols":["AAPL"],"no_data":["AAPL"],"epoch":"e"}"#
        );
        assert_eq!(pong(Some(&id), 5), r#"{"type":"pong","id":1,"ts":5}"#);
        assert_eq!(
            error(Some(&id), ErrorCode::InvalidSymbol, "bad", &["??"]),
            r#"{"type":"error","id":1,"code":"invalid_symbol","message":"bad","symbols":["??"]}"#
        );
        assert_eq!(
            snapshot(&["{}".into(), "{}".into()]),
            r#"{"type":"snapshot","quotes":[{},{}]}"#
        );
        assert_eq!(snapshot(&[]), r#"{"type":"snapshot","quotes":[]}"#);
    }
}
