//! Step 1, the guard: refuses requests no route should ever see, before anything reads their
//! path or host — a head larger than `server.max_header_size` (431), a path that cannot be
//! normalized or a host that is not valid (400), a `Connection` header that nominates a header
//! the request cannot do without (400), and a `Content-Length` that is not one number (400:
//! lists and duplicates are how requests get smuggled past a proxy).

use super::context::Context;
use crate::reply::Denial;
use crate::snapshot::Snapshot;
use pingora::http::RequestHeader;

/// End-to-end headers that `Connection` may not nominate for removal: without them the request
/// cannot be forwarded (or its body found).
const INDISPENSABLE: [&str; 3] = ["host", "content-length", "transfer-encoding"];

/// `Err` when the request is refused before routing.
pub fn check(request: &RequestHeader, ctx: &Context, snapshot: &Snapshot) -> Result<(), Denial> {
    let limit = snapshot.config.server.max_header_size;
    if ctx.facts.head_size > limit {
        return Err(Denial::HeadersTooLarge { limit });
    }
    if let Some(why) = ctx.facts.path_rejection {
        return Err(Denial::PathNotNormalized { why });
    }
    if let Some(why) = ctx.facts.host_rejection {
        return Err(Denial::InvalidHost { why });
    }
    check_connection(request)?;
    check_content_length(request)
}

fn check_connection(request: &RequestHeader) -> Result<(), Denial> {
    for value in request.headers.get_all(http::header::CONNECTION) {
        let text = value.to_str().unwrap_or("");
        for token in text.split(',').map(str::trim) {
            if let Some(header) = INDISPENSABLE
                .iter()
                .find(|name| token.eq_ignore_ascii_case(name))
            {
                return Err(Denial::BadConnectionHeader {
                    header: (*header).to_owned(),
                });
            }
        }
    }
    Ok(())
}

fn check_content_length(request: &RequestHeader) -> Result<(), Denial> {
    let mut lengths = request.headers.get_all(http::header::CONTENT_LENGTH).iter();
    let digits = match (lengths.next(), lengths.next()) {
        (None, _) => return Ok(()),
        (Some(only), None) => only.as_bytes(),
        (Some(_), Some(_)) => return Err(Denial::BadContentLength),
    };
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(Denial::BadContentLength);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> RequestHeader {
        let mut request = RequestHeader::build("POST", b"/x", None).unwrap();
        for (name, value) in headers {
            request.append_header(name.to_string(), *value).unwrap();
        }
        request
    }

    #[test]
    fn content_length_is_one_number() {
        assert_eq!(check_content_length(&request(&[])), Ok(()));
        assert_eq!(
            check_content_length(&request(&[("content-length", "42")])),
            Ok(())
        );
        for bad in ["3,3", "+3", "-1", "", " 3", "0x10", "99999999999999999999"] {
            assert_eq!(
                check_content_length(&request(&[("content-length", bad)])),
                Err(Denial::BadContentLength),
                "{bad:?}"
            );
        }
        assert_eq!(
            check_content_length(&request(&[
                ("content-length", "3"),
                ("content-length", "3")
            ])),
            Err(Denial::BadContentLength)
        );
    }

    #[test]
    fn connection_may_not_nominate_indispensable_headers() {
        assert_eq!(
            check_connection(&request(&[("connection", "keep-alive, x-debug")])),
            Ok(())
        );
        assert_eq!(
            check_connection(&request(&[("connection", "close, Host")])),
            Err(Denial::BadConnectionHeader {
                header: "host".into()
            })
        );
        assert!(check_connection(&request(&[("connection", "transfer-encoding")])).is_err());
    }
}
