//! `GET /admin/discovery`: each `[[discovery.dns]]` name — its settings, state (`pending`,
//! `ok`, `failing`, `expired`), the backends it contributes, its last success and its last
//! error. The backends themselves are in `/admin/backends`, with `"source": "dns"` and the
//! name under `discovery`.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::json;

use super::{Admin, json_response};

/// Where it answers.
pub const PATH: &str = "/admin/discovery";

/// `GET /admin/discovery`.
pub fn report(admin: &Admin) -> Response<Full<Bytes>> {
    json_response(
        StatusCode::OK,
        json!({ "dns": admin.reloader.discovery().report() }),
    )
}
