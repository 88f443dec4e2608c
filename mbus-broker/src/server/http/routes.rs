//! What the monitoring port answers: `/healthz`, `/metrics`, `/v1/topics`, `/v1/topics/NAME`
//! and `/v1/connections`, each built from the core when asked, and `DELETE /v1/topics/NAME`.

use serde_json::{Value, json};

use super::Context;
use super::metrics;

/// The parts of a request the routes look at.
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// Whether the client takes the OpenMetrics format, as Prometheus says it does.
    pub openmetrics: bool,
    /// Whether the query says `force=true`.
    pub force: bool,
    /// The token of an `Authorization: Bearer` header.
    pub bearer: Option<&'a [u8]>,
}

impl<'a> Request<'a> {
    pub fn from_parsed(parsed: &httparse::Request<'_, 'a>) -> Self {
        let target = parsed.path.unwrap_or("/");
        let openmetrics = parsed.headers.iter().any(|h| {
            h.name.eq_ignore_ascii_case("accept")
                && String::from_utf8_lossy(h.value).contains("application/openmetrics-text")
        });
        let bearer = parsed
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("authorization"))
            .and_then(|h| h.value.strip_prefix(b"Bearer "));
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        Request {
            method: parsed.method.unwrap_or(""),
            path,
            openmetrics,
            force: query.split('&').any(|pair| pair == "force=true"),
            bearer,
        }
    }
}

/// An answer: status, content type and body.
pub struct Response {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Response {
    pub fn text(status: u16, body: &str) -> Self {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.as_bytes().to_vec(),
        }
    }

    fn json(status: u16, value: &Value) -> Self {
        let mut body = serde_json::to_vec_pretty(value).expect("JSON values serialize");
        body.push(b'\n');
        Response {
            status,
            content_type: "application/json",
            body,
        }
    }

    /// The whole HTTP/1.1 response; the connection closes after it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            401 => "Unauthorized",
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            409 => "Conflict",
            431 => "Request Header Fields Too Large",
            500 => "Internal Server Error",
            503 => "Service Unavailable",
            _ => "Error",
        };
        let mut out = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.status,
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

/// The answer to `request`.
pub fn answer(request: &Request<'_>, cx: &mut Context<'_>) -> Response {
    match (request.method, request.path.strip_prefix("/v1/topics/")) {
        ("GET", _) => {}
        ("DELETE", Some(name)) => return delete(request, name, cx),
        _ => return Response::text(405, "only GET is served here, and DELETE of a topic\n"),
    }
    match request.path {
        "/healthz" if cx.shutting_down => Response::text(503, "shutting down\n"),
        "/healthz" => Response::text(200, "ok\n"),
        "/metrics" if request.openmetrics => Response {
            status: 200,
            content_type: "application/openmetrics-text; version=1.0.0; charset=utf-8",
            body: metrics::exposition(cx).into_bytes(),
        },
        "/metrics" => Response {
            status: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: metrics::classic(&metrics::exposition(cx)).into_bytes(),
        },
        "/v1/topics" => {
            let topics: Vec<Value> = cx.core.topic_infos().iter().map(topic_json).collect();
            Response::json(200, &json!({ "topics": topics }))
        }
        "/v1/connections" => connections(cx),
        path => match path.strip_prefix("/v1/topics/") {
            Some(name) => match cx.core.topic_infos().iter().find(|t| t.name == name) {
                Some(topic) => Response::json(200, &topic_json(topic)),
                None => Response::text(404, &format!("no topic {name}\n")),
            },
            None => Response::text(404, "not found\n"),
        },
    }
}

/// `DELETE /v1/topics/NAME[?force=true]`: with the broker's token when it has one.
fn delete(request: &Request<'_>, name: &str, cx: &mut Context<'_>) -> Response {
    use crate::engine::admin::DeleteError;
    use subtle::ConstantTimeEq;
    if let Some(token) = cx.auth_token {
        let given = request.bearer.unwrap_or_default();
        if !bool::from(token.as_bytes().ct_eq(given)) {
            return Response::text(401, "deleting a topic takes the broker's token\n");
        }
    }
    match cx.core.delete_topic(name, request.force) {
        Ok(()) => Response::json(200, &json!({ "deleted": name })),
        Err(e @ DeleteError::NotFound(_)) => Response::text(404, &format!("{e}\n")),
        Err(e @ DeleteError::Subscribed { .. }) => Response::text(409, &format!("{e}\n")),
        Err(e @ DeleteError::Files { .. }) => {
            log::error!("http: {e}");
            Response::text(500, &format!("{e}\n"))
        }
    }
}

fn topic_json(topic: &crate::engine::inspect::TopicInfo) -> Value {
    let subscribers: Vec<Value> = topic
        .subscribers
        .iter()
        .map(|s| json!({ "peer": s.peer.to_string(), "position": s.position, "lag": s.lag }))
        .collect();
    let groups: Vec<Value> = topic
        .groups
        .iter()
        .map(|g| {
            json!({
                "name": g.name,
                "members": g.stats.members,
                "floor": g.stats.floor,
                "next": g.stats.next,
                "lag": g.lag,
                "in_flight": g.stats.in_flight,
                "waiting": g.stats.waiting,
                "redelivered": g.stats.redelivered,
                "dead_lettered": g.stats.dead_lettered,
                "lost": g.stats.lost,
            })
        })
        .collect();
    json!({
        "name": topic.name,
        "first_offset": topic.first,
        "next_offset": topic.next,
        "messages": topic.next - topic.first,
        "memory_bytes": topic.memory_bytes,
        "disk_bytes": topic.disk_bytes,
        "unavailable": topic.unavailable,
        "first_time_ms": topic.first_time,
        "last_time_ms": topic.last_time,
        "subscribers": subscribers,
        "groups": groups,
    })
}

fn connections(cx: &Context<'_>) -> Response {
    let conns: Vec<Value> = cx
        .core
        .conn_infos()
        .iter()
        .map(|c| {
            let subscriptions: Vec<Value> = c
                .subscriptions
                .iter()
                .map(|(topic, position)| json!({ "topic": topic, "position": position }))
                .collect();
            json!({
                "peer": c.peer.to_string(),
                "role": c.role.as_str(),
                "open": c.open,
                "age_seconds": c.age.as_secs_f64(),
                "bytes_in": (cx.bytes_in)(c.id.index()),
                "bytes_out": c.bytes_out,
                "published": c.published,
                "subscriptions": subscriptions,
            })
        })
        .collect();
    Response::json(200, &json!({ "connections": conns }))
}
