//! Web access logs: nginx and Apache `combined`/`common`, Envoy's (and Istio's) default
//! format, Traefik's CLF, and JSON access logs (nginx `escape=json` formats, Envoy/Istio JSON,
//! Traefik JSON, Caddy), mapped onto ECS `url.*`, `http.*`, `user_agent.*` and `source.ip`.
//!
//! Access logs mostly arrive as the `message` of a container log line, so the mapping is a
//! step, [`enrich`], that every container event passes through
//! ([`crate::container::log_event`]) and so does every generic JSON object (a shipper's record
//! whose `log`/`message` is an access line, or an access log written as JSON). It also backs
//! four registry parsers for files and streams that hold only access logs: `nginx`, `apache`
//! (also `httpd`), `envoy` (also `istio`) and `traefik`, text parsers whose events get
//! `event.dataset: <name>.access` and the line's own time.
//!
//! | field | combined / common / Traefik CLF | Envoy / Istio text | JSON keys (first present) |
//! |---|---|---|---|
//! | `source.ip` | remote host (last address before ident) | `DOWNSTREAM_REMOTE_ADDRESS` (Istio), else first `X-Forwarded-For` | `remote_addr`, `ClientHost`, `downstream_remote_address`, `request.remote_ip`, ... |
//! | `source.domain` | remote host when it is a name | | |
//! | `user.name` | remote user unless `-` | | `remote_user`, `ClientUsername` |
//! | `http.request.method` | request line | request line | `request_method`, `method`, `RequestMethod`, `request.method` |
//! | `url.original` | request line | request line | `request_uri`, `path`, `RequestPath`, `uri`(+`args`), `request.uri`, `request` (line) |
//! | `url.path`, `url.query` | split at the first `?` | same | same |
//! | `url.domain` | | `:authority` (without port) | `host`, `authority`, `RequestHost`, `request.host` |
//! | `http.version` | `HTTP/x` of the request line | same | `server_protocol`, `protocol`, `RequestProtocol`, `request.proto` |
//! | `http.response.status_code` | status | `RESPONSE_CODE` | `status`, `response_code`, `DownstreamStatus` |
//! | `http.response.body.bytes` | bytes | `BYTES_SENT` | `body_bytes_sent`, `bytes_sent`, `DownstreamContentSize`, `size` |
//! | `http.request.referrer` | referrer | | `http_referer`, `referer`, `request_Referer` |
//! | `user_agent.original` | user agent | `USER-AGENT` | `http_user_agent`, `user_agent`, `request_User-Agent`, `request.headers.User-Agent` |
//! | `http.request.id` | | `X-REQUEST-ID` | `request_id`, `RequestID` |
//! | `event.category` / `event.type` | `web` / `access` | same | same |
//!
//! Nothing already on the event is overwritten (an ECS-shaped record keeps its own fields),
//! and a field is never written through a value that is not an object (a record's own
//! `url: "..."` string stays). `event.dataset` stays what the container or record had.
//!
//! Cheap and bounded: a line is looked at only when it is at most [`MAX_LINE`] bytes and passes a
//! byte pre-check (`[` first for Envoy, `] "` for CLF, `{` for JSON) before any parsing;
//! quoted fields are scanned once, at most [`MAX_TOKENS`] fields are read, and nothing panics
//! on odd input (`tests/proptest.rs`). A line that does not fit is left alone.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use crowsnest_model::{ecs, format_timestamp, parse_timestamp, Event};
use serde_json::{json, Map, Value};

use crate::generic::map_generic;
use crate::limits::parse_json;
use crate::registry::{Context, Input, Parser, Record};
use crate::{finish, Decoded};

/// Longest message looked at (request lines are limited to a few KiB by web servers).
pub const MAX_LINE: usize = 64 * 1024;

/// Most fields read from one text line.
pub const MAX_TOKENS: usize = 64;

/// What an access-log line says, borrowed from the line or record.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Access {
    /// The client (or peer) address.
    pub source_ip: Option<IpAddr>,
    /// The client's name, when the server logged a name instead of an address.
    pub source_domain: Option<String>,
    /// Authenticated user, if any.
    pub user: Option<String>,
    /// Request method.
    pub method: Option<String>,
    /// Request target as sent (path and query, or an absolute URL).
    pub url: Option<String>,
    /// Host the request was for.
    pub domain: Option<String>,
    /// `1.1` from `HTTP/1.1`.
    pub version: Option<String>,
    /// Response status.
    pub status: Option<i64>,
    /// Response body bytes.
    pub bytes: Option<i64>,
    /// `Referer` header.
    pub referrer: Option<String>,
    /// `User-Agent` header.
    pub user_agent: Option<String>,
    /// `X-Request-Id`.
    pub request_id: Option<String>,
    /// The time the line carries.
    pub time: Option<DateTime<Utc>>,
}

/// The access-log step: when the event's own fields (a JSON access record) or its `message`
/// (a text or JSON access line) are an access log, adds the ECS web fields. Returns whether it
/// did. Never overwrites a field the event already has.
pub fn enrich(event: &mut Event) -> bool {
    if event.get("url.original").is_some() || event.get("http.request.method").is_some() {
        return false; // already mapped (ECS-shaped input)
    }
    if let Some(access) = from_json(event.as_map()) {
        apply(event, &access);
        return true;
    }
    let access = match event.get_str(ecs::MESSAGE) {
        Some(message) => parse_message(message),
        None => None,
    };
    match access {
        Some(access) => {
            apply(event, &access);
            true
        }
        None => false,
    }
}

/// Recognises one access-log message: JSON, Envoy/Istio text, or combined/common/Traefik CLF.
pub fn parse_message(message: &str) -> Option<Access> {
    let line = message.trim_end_matches(['\r', '\n']);
    if line.len() > MAX_LINE || line.len() < 10 {
        return None;
    }
    match line.as_bytes()[0] {
        b'{' => {
            let Ok(Value::Object(object)) = serde_json::from_str::<Value>(line) else {
                return None;
            };
            from_json(&object)
        }
        b'[' => parse_envoy(line),
        _ => parse_clf(line),
    }
}

/// Writes the fields of an access line onto the event (see the module table).
pub fn apply(event: &mut Event, access: &Access) {
    let mut put = |path: &str, value: Value| put_new(event, path, value);
    if let Some(ip) = access.source_ip {
        put(ecs::SOURCE_IP, json!(ip.to_string()));
    }
    if let Some(domain) = &access.source_domain {
        put("source.domain", json!(domain));
    }
    if let Some(user) = &access.user {
        put(ecs::USER_NAME, json!(user));
    }
    if let Some(method) = &access.method {
        put("http.request.method", json!(method));
    }
    if let Some(url) = &access.url {
        put("url.original", json!(url));
        let (target, domain) = split_absolute(url);
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (target, None),
        };
        if !path.is_empty() {
            put("url.path", json!(path));
        }
        if let Some(query) = query.filter(|q| !q.is_empty()) {
            put("url.query", json!(query));
        }
        if let Some(domain) = domain.filter(|d| !d.is_empty()) {
            put("url.domain", json!(domain));
        }
    }
    if let Some(domain) = &access.domain {
        put("url.domain", json!(domain));
    }
    if let Some(version) = &access.version {
        put("http.version", json!(version));
    }
    if let Some(status) = access.status {
        put("http.response.status_code", json!(status));
    }
    if let Some(bytes) = access.bytes {
        put("http.response.body.bytes", json!(bytes));
    }
    if let Some(referrer) = &access.referrer {
        put("http.request.referrer", json!(referrer));
    }
    if let Some(agent) = &access.user_agent {
        put(ecs::USER_AGENT, json!(agent));
    }
    if let Some(id) = &access.request_id {
        put("http.request.id", json!(id));
    }
    put(ecs::EVENT_CATEGORY, json!(["web"]));
    put(ecs::EVENT_TYPE, json!(["access"]));
}

/// Sets `path` unless it has a value or a non-object value sits on the way to it.
fn put_new(event: &mut Event, path: &str, value: Value) {
    if event.get(path).is_some() {
        return;
    }
    let mut end = 0;
    while let Some(dot) = path[end..].find('.') {
        end += dot;
        match event.get(&path[..end]) {
            None | Some(Value::Object(_)) => {}
            Some(_) => return,
        }
        end += 1;
    }
    event.set(path, value);
}

/// `host:8000` → `host`, `[::1]:80` → `::1`.
fn host_only(authority: &str) -> String {
    if let Some(inner) = authority.strip_prefix('[') {
        return inner.split(']').next().unwrap_or(inner).to_string();
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host.to_string()
        }
        _ => authority.to_string(),
    }
}

/// `http://host:port/path?q` → (`/path?q`, `host`); anything else is its own target.
fn split_absolute(url: &str) -> (&str, Option<&str>) {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    let Some(rest) = rest else {
        return (url, None);
    };
    let (authority, target) = match rest.find(['/', '?']) {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, ""),
    };
    let host = authority.rsplit('@').next().unwrap_or(authority);
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => host,
    };
    (target, Some(host))
}

/// A field of a text line: `"quoted"` (escapes kept as written) or bare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    Quoted(&'a str),
    Bare(&'a str),
}

impl<'a> Token<'a> {
    fn text(self) -> &'a str {
        match self {
            Token::Quoted(t) | Token::Bare(t) => t,
        }
    }
}

/// Reads fields separated by spaces, up to [`MAX_TOKENS`] and up to an unterminated quote.
fn tokens(mut rest: &str) -> Option<Vec<Token<'_>>> {
    let mut out = Vec::new();
    loop {
        rest = rest.trim_start_matches(' ');
        if rest.is_empty() || out.len() >= MAX_TOKENS {
            return Some(out);
        }
        if let Some(inner) = rest.strip_prefix('"') {
            // An unterminated quote ends the fields read so far (Traefik has been seen
            // writing a router name without its closing quote).
            let Some(end) = closing_quote(inner) else {
                return Some(out);
            };
            out.push(Token::Quoted(&inner[..end]));
            rest = &inner[end + 1..];
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            out.push(Token::Bare(&rest[..end]));
            rest = &rest[end..];
        }
    }
}

/// Index of the `"` closing a quoted field (a backslash escapes the next byte).
fn closing_quote(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

fn dash(text: &str) -> Option<&str> {
    (!text.is_empty() && text != "-").then_some(text)
}

fn number(text: &str) -> Option<i64> {
    if text.is_empty() || text.len() > 18 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// An address, with or without a port (`10.0.0.1:80`, `[::1]:80`, `::1`).
fn address(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_end_matches(',');
    if let Ok(ip) = text.parse() {
        return Some(ip);
    }
    if let Some(inner) = text.strip_prefix('[') {
        return inner.split(']').next()?.parse().ok();
    }
    let (host, port) = text.rsplit_once(':')?;
    (port.bytes().all(|b| b.is_ascii_digit()) && !host.contains(':'))
        .then(|| host.parse().ok())
        .flatten()
}

/// The request line `METHOD target HTTP/x.y` into the access (a `-` or garbled line sets
/// nothing: TLS probes and timeouts are logged that way).
fn request_line(line: &str, access: &mut Access) {
    let Some((method, rest)) = line.split_once(' ') else {
        return;
    };
    if method.is_empty()
        || method.len() > 20
        || !method
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_')
    {
        return;
    }
    let (target, version) = match rest.rsplit_once(' ') {
        Some((target, proto)) if proto.starts_with("HTTP/") => (target, Some(&proto[5..])),
        _ => (rest, None),
    };
    access.method = Some(method.to_string());
    if !target.is_empty() {
        access.url = Some(target.to_string());
    }
    access.version = version.filter(|v| !v.is_empty()).map(str::to_string);
}

fn clf_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(text, "%d/%b/%Y:%H:%M:%S %z")
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// `host ident user [time] "request" status bytes ["referrer" "agent" ...]`: Apache and nginx
/// `common`/`combined` (with any fields appended, as Traefik's CLF and many nginx formats do).
fn parse_clf(line: &str) -> Option<Access> {
    let close = memchr::memmem::find(line.as_bytes(), b"] \"")?;
    let open = line[..close].rfind(" [")?;
    let time = clf_time(&line[open + 2..close])?;
    let prefix: Vec<&str> = line[..open].split(' ').filter(|s| !s.is_empty()).collect();
    if prefix.len() < 3 {
        return None;
    }
    let user = prefix[prefix.len() - 1];
    let host = prefix[prefix.len() - 3];
    let fields = tokens(&line[close + 2..])?;
    let [Token::Quoted(request), Token::Bare(status), Token::Bare(bytes), rest @ ..] =
        fields.as_slice()
    else {
        return None;
    };
    let status = number(status)?;
    if !(100..=999).contains(&status) {
        return None;
    }
    let source_ip = address(host);
    let mut access = Access {
        source_ip,
        source_domain: source_ip
            .is_none()
            .then(|| dash(host).map(str::to_string))
            .flatten(),
        user: dash(user).map(str::to_string),
        status: Some(status),
        bytes: number(bytes),
        time: Some(time),
        ..Access::default()
    };
    request_line(request, &mut access);
    if let [Token::Quoted(referrer), Token::Quoted(agent), ..] = rest {
        access.referrer = dash(referrer).map(str::to_string);
        access.user_agent = dash(agent).map(str::to_string);
    }
    Some(access)
}

/// `[time] "request" status ...`: Envoy's default format and Istio's; the last five quoted
/// fields are `X-Forwarded-For`, `User-Agent`, `X-Request-Id`, `:authority`, upstream host.
fn parse_envoy(line: &str) -> Option<Access> {
    let close = memchr::memmem::find(line.as_bytes(), b"] \"")?;
    let time = DateTime::parse_from_rfc3339(&line[1..close])
        .ok()?
        .with_timezone(&Utc);
    let fields = tokens(&line[close + 2..])?;
    let [Token::Quoted(request), Token::Bare(status), ..] = fields.as_slice() else {
        return None;
    };
    let status = number(status)?;
    let mut access = Access {
        status: Some(status),
        time: Some(time),
        ..Access::default()
    };
    request_line(request, &mut access);
    let quoted: Vec<usize> = (2..fields.len())
        .filter(|&i| matches!(fields[i], Token::Quoted(_)))
        .collect();
    if quoted.len() >= 5 {
        let first = quoted.len() - 5;
        let at = |k: usize| dash(fields[quoted[first + k]].text());
        let xff = quoted[first];
        if xff >= 5 {
            if let Token::Bare(sent) = fields[xff - 3] {
                access.bytes = number(sent);
            }
        }
        access.user_agent = at(1).map(str::to_string);
        access.request_id = at(2).map(str::to_string);
        access.domain = at(3).map(host_only);
        // Istio appends cluster, upstream local, downstream local, downstream remote.
        let remote = quoted[first + 4] + 4;
        access.source_ip = fields
            .get(remote)
            .filter(|t| matches!(t, Token::Bare(_)))
            .and_then(|t| address(t.text()))
            .or_else(|| at(0).and_then(|x| address(x.split(',').next().unwrap_or(x))));
    }
    Some(access)
}

/// A JSON access record: needs a request target and a method or status among the keys
/// access logs use (nginx, Envoy/Istio, Traefik, Caddy, typical app request logs).
pub fn from_json(object: &Map<String, Value>) -> Option<Access> {
    let s = |keys: &[&str]| {
        keys.iter().find_map(|k| match object.get(*k) {
            Some(Value::String(v)) => dash(v).map(str::to_string),
            _ => None,
        })
    };
    let n = |keys: &[&str]| {
        keys.iter().find_map(|k| match object.get(*k) {
            Some(Value::Number(v)) => v.as_i64(),
            Some(Value::String(v)) => number(v),
            _ => None,
        })
    };
    let caddy = object.get("request").and_then(Value::as_object);
    let mut access = Access::default();
    if let Some(line) = s(&["request"]) {
        request_line(&line, &mut access);
    }
    let url = s(&["request_uri", "RequestPath", "path", "uri", "url"]).map(|u| {
        match s(&["args", "query_string"]) {
            Some(args) if !u.contains('?') && object.contains_key("uri") => format!("{u}?{args}"),
            _ => u,
        }
    });
    access.url = url
        .or(access.url)
        .or_else(|| caddy.and_then(|r| r.get("uri")?.as_str().map(str::to_string)));
    access.url.as_ref()?; // most records stop here: no request target
    access.method = s(&["request_method", "method", "RequestMethod", "http_method"])
        .or(access.method)
        .or_else(|| caddy.and_then(|r| r.get("method")?.as_str().map(str::to_string)));
    access.status = n(&["status", "response_code", "DownstreamStatus", "status_code"]);
    let url = access.url.as_deref()?;
    let target = url.starts_with('/') || url.starts_with("http") || url == "*";
    let status = access.status.is_some_and(|s| (100..=599).contains(&s));
    if !target || (access.method.is_none() && !status) {
        return None;
    }
    let remote = s(&[
        "remote_addr",
        "ClientHost",
        "client_ip",
        "downstream_remote_address",
        "remote_ip",
        "ClientAddr",
    ])
    .or_else(|| caddy.and_then(|r| r.get("remote_ip")?.as_str().map(str::to_string)));
    access.source_ip = remote.as_deref().and_then(address).or_else(|| {
        s(&["http_x_forwarded_for", "x_forwarded_for"])
            .and_then(|x| address(x.split(',').next().unwrap_or(&x)))
    });
    access.user = s(&["remote_user", "ClientUsername"]);
    access.domain = s(&[
        "host",
        "http_host",
        "authority",
        "RequestHost",
        "server_name",
    ])
    .or_else(|| caddy.and_then(|r| r.get("host")?.as_str().map(str::to_string)));
    let protocol = s(&["server_protocol", "protocol", "RequestProtocol"])
        .or_else(|| caddy.and_then(|r| r.get("proto")?.as_str().map(str::to_string)));
    if let Some(version) = protocol.as_deref().and_then(|p| p.strip_prefix("HTTP/")) {
        access.version = Some(version.to_string());
    }
    access.bytes = n(&[
        "body_bytes_sent",
        "bytes_sent",
        "DownstreamContentSize",
        "size",
    ]);
    access.referrer = s(&["http_referer", "referer", "referrer", "request_Referer"]);
    let header = |name: &str| {
        let headers = caddy?.get("headers")?.as_object()?;
        match headers.get(name)? {
            Value::Array(items) => items.first()?.as_str().map(str::to_string),
            Value::String(v) => Some(v.clone()),
            _ => None,
        }
    };
    access.user_agent = s(&["http_user_agent", "user_agent", "request_User-Agent"])
        .or_else(|| header("User-Agent"));
    if access.referrer.is_none() {
        access.referrer = header("Referer");
    }
    access.request_id = s(&["request_id", "RequestID", "x_request_id"]);
    access.time = ["time_iso8601", "start_time", "StartUTC", "time_local"]
        .iter()
        .find_map(|k| match object.get(*k)? {
            Value::String(t) => clf_time(t).or_else(|| parse_timestamp(&json!(t))),
            other => parse_timestamp(other),
        });
    Some(access)
}

/// A registry parser for a stream of access logs of one server (`nginx`, `apache`, `envoy`,
/// `traefik`): text lines in any of the formats above, or JSON access records.
#[derive(Debug)]
pub struct AccessLog {
    name: &'static str,
    aliases: &'static [&'static str],
    dataset: &'static str,
    detects: fn(&str) -> bool,
}

/// nginx access logs (`source=nginx`).
pub static NGINX: AccessLog = AccessLog {
    name: "nginx",
    aliases: &["nginx.access"],
    dataset: "nginx.access",
    detects: |line| !line.starts_with('[') && parse_clf(line).is_some(),
};

/// Apache httpd access logs (`source=apache`, also `httpd`). The lines are nginx's too, so
/// only selected by name.
pub static APACHE: AccessLog = AccessLog {
    name: "apache",
    aliases: &["httpd", "apache.access"],
    dataset: "apache.access",
    detects: |_| false,
};

/// Envoy and Istio access logs (`source=envoy`, also `istio`).
pub static ENVOY: AccessLog = AccessLog {
    name: "envoy",
    aliases: &["istio", "envoy.access"],
    dataset: "envoy.access",
    detects: |line| line.starts_with('[') && parse_envoy(line).is_some(),
};

/// Traefik access logs (`source=traefik`): CLF lines end in `"router" "server URL" Nms`.
pub static TRAEFIK: AccessLog = AccessLog {
    name: "traefik",
    aliases: &["traefik.access"],
    dataset: "traefik.access",
    detects: |line| {
        line.ends_with("ms")
            && line
                .rsplit(' ')
                .next()
                .and_then(|d| d.strip_suffix("ms"))
                .is_some_and(|d| number(d).is_some())
            && !line.starts_with('[')
            && parse_clf(line).is_some()
    },
};

impl Parser for AccessLog {
    fn name(&self) -> &'static str {
        self.name
    }

    fn aliases(&self) -> &'static [&'static str] {
        self.aliases
    }

    fn input(&self) -> Input {
        Input::Text
    }

    fn detect_text(&self, line: &str) -> bool {
        line.len() <= MAX_LINE && (self.detects)(line)
    }

    /// An access line becomes an event of `<name>.access` with the line's time; a JSON
    /// record keeps its keys (as the generic parser does); any other line (an error-log line
    /// in the same stream) is kept as a `message` of dataset `<name>.log`, never dropped.
    fn parse(&self, record: Record<'_>, cx: &Context<'_>, out: &mut Decoded) {
        let text = record.text();
        let mut event = if text.starts_with('{') {
            match parse_json(text, cx.limits) {
                Ok(Value::Object(object)) => map_generic(object, self.dataset),
                _ => plain(text, self.dataset),
            }
        } else {
            plain(text, self.dataset)
        };
        event.set_default(ecs::EVENT_MODULE, json!(self.name));
        event.set_default(ecs::EVENT_KIND, json!("event"));
        let access = from_json(event.as_map()).or_else(|| match event.get_str(ecs::MESSAGE) {
            Some(message) => parse_message(message),
            None => None,
        });
        match access {
            Some(access) => {
                if let Some(time) = access.time {
                    put_new(
                        &mut event,
                        ecs::TIMESTAMP,
                        Value::String(format_timestamp(time)),
                    );
                }
                apply(&mut event, &access);
            }
            None => {
                if event.get_str(ecs::EVENT_DATASET) == Some(self.dataset) {
                    let dataset = format!("{}.log", self.name);
                    event.set(ecs::EVENT_DATASET, json!(dataset));
                }
            }
        }
        out.events.push(finish(event, text, cx.limits));
    }
}

fn plain(text: &str, dataset: &str) -> Event {
    let mut event = Event::new();
    event.set(ecs::MESSAGE, json!(text));
    event.set(ecs::EVENT_DATASET, json!(dataset));
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_line_with_forwarded_hosts_and_extras() {
        let a = parse_message(
            r#"10.0.0.2, 10.0.0.1, 127.0.0.1 - - [07/Dec/2016:11:05:07 +0100] "GET /ocelot?x=1 HTTP/1.1" 200 571 "-" "Mozilla/5.0" "-""#,
        )
        .expect("combined");
        assert_eq!(a.source_ip, "127.0.0.1".parse().ok());
        assert_eq!(a.method.as_deref(), Some("GET"));
        assert_eq!(a.url.as_deref(), Some("/ocelot?x=1"));
        assert_eq!(a.version.as_deref(), Some("1.1"));
        assert_eq!((a.status, a.bytes), (Some(200), Some(571)));
        assert_eq!(a.referrer, None);
        assert_eq!(a.user_agent.as_deref(), Some("Mozilla/5.0"));
    }

    #[test]
    fn escaped_quotes_and_garbled_requests() {
        let a = parse_message(
            r#"::1 - bob [26/Dec/2016:16:16:48 +0200] "GET /a\"b HTTP/1.0" 400 - "-" "x \"y\"""#,
        )
        .expect("common");
        assert_eq!(a.url.as_deref(), Some(r#"/a\"b"#));
        assert_eq!(a.user.as_deref(), Some("bob"));
        assert_eq!(a.user_agent.as_deref(), Some(r#"x \"y\""#));
        let a = parse_message(r#"::1 - - [26/Dec/2016:16:16:48 +0200] "-" 408 -"#).expect("408");
        assert_eq!((a.method, a.url, a.status), (None, None, Some(408)));
        assert!(parse_message("plain words here [not a time] \"x\" 200 1").is_none());
        assert!(parse_message("1.2.3.4 - - [07/Dec/2016:11:05:07 +0100] \"GET /").is_none());
    }

    #[test]
    fn absolute_targets_split() {
        assert_eq!(
            split_absolute("http://169.254.169.254:80/latest?x"),
            ("/latest?x", Some("169.254.169.254"))
        );
        assert_eq!(split_absolute("/a?b"), ("/a?b", None));
    }

    #[test]
    fn nothing_is_written_through_a_scalar() {
        let mut event = Event::new();
        event.set("url", json!("kept"));
        event.set(
            ecs::MESSAGE,
            json!(r#"1.2.3.4 - - [07/Dec/2016:11:05:07 +0100] "GET /x HTTP/1.1" 200 1 "-" "ua""#),
        );
        assert!(enrich(&mut event));
        assert_eq!(event.get_str("url"), Some("kept"));
        assert_eq!(event.get_str("http.request.method"), Some("GET"));
    }
}
