//! What the test router heard, rendered for the host's integration tests to read: the
//! upstream headers of `report = true`, and the JSON line of each recorded outcome.

use lbx_guest::{Backends, Fault, Outcome, Request, RetryContext};
use serde_json::{Value, json};

/// The `x-test-*` upstream headers: the body prefix, the signals, the clock and the retry
/// context this request came with.
pub fn heard(
    req: &dyn Request,
    backends: &Backends,
    retry: &RetryContext,
) -> Vec<(&'static str, String)> {
    let prefix = req.body_prefix();
    let mut headers = vec![(
        "x-test-body-prefix-len",
        prefix
            .as_ref()
            .map_or_else(|| "none".to_string(), |p| p.len().to_string()),
    )];
    if let Some(model) = prefix
        .as_deref()
        .and_then(|p| lbx_guest::json_string_field(p, "model"))
    {
        headers.push(("x-test-body-model", model));
    }
    headers.push(("x-test-signals", signals(backends).to_string()));
    headers.push(("x-test-now-us", lbx_guest::now_us().to_string()));
    headers.push(("x-test-attempt", retry.attempt.to_string()));
    let tried: Vec<String> = retry.tried.iter().map(u32::to_string).collect();
    headers.push(("x-test-tried", tried.join(",")));
    headers
}

/// `{"names":[..],"backends":[{"age_ms":..,"values":[..]},..]}`, `null` for a missing number.
fn signals(backends: &Backends) -> Value {
    let names = backends.signal_names();
    let rows: Vec<Value> = (0..backends.len())
        .map(|i| {
            let values: Vec<Option<f64>> =
                (0..names.len()).map(|s| backends.signal(i, s)).collect();
            json!({ "age_ms": backends.signal_age_ms(i), "values": values })
        })
        .collect();
    json!({ "names": names, "backends": rows })
}

/// One outcome as a JSON line, numbered `n`, its fields in the order of the WIT record.
pub fn outcome_line(n: i64, outcome: &Outcome) -> String {
    let fault = match outcome.fault {
        None => "null",
        Some(Fault::Client) => r#""client""#,
        Some(Fault::Backend) => r#""backend""#,
        Some(Fault::Lbx) => r#""lbx""#,
    };
    format!(
        r#"{{"test_router":"outcome","n":{n},"backend":{},"status":{},"fault":{fault},"ttfb_us":{},"first_byte_us":{},"total_us":{},"bytes_up":{},"bytes_down":{},"attempt":{},"tag":{}}}"#,
        outcome.backend,
        or_null(outcome.status),
        or_null(outcome.ttfb_us),
        or_null(outcome.first_byte_us),
        outcome.total_us,
        outcome.bytes_up,
        outcome.bytes_down,
        outcome.attempt,
        outcome.tag,
    )
}

fn or_null(number: Option<impl ToString>) -> String {
    number.map_or_else(|| "null".to_string(), |n| n.to_string())
}
