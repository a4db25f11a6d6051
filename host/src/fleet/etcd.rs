//! [`Store`] on etcd v3, through the `etcd-client` crate (gRPC over tonic). The only file in
//! lbx that names etcd-client types; everything it hands out is a plain [`super::store`] type.
//!
//! Failover: the client balances requests over the endpoints (tonic's power-of-two-choices
//! balancer). A killed member refuses connections, so requests to it fail at once; a hung member
//! (SIGSTOP, a network black hole) is taken out of the balancer (members.rs) within
//! `keepalive_interval + keepalive_timeout`, and until then each request sent to it is bounded
//! by `request_timeout`.
//! Idempotent operations (list, starting a watch, granting, revoking, keeping alive) are retried
//! on another attempt when a member is unreachable or the cluster has no leader — once per
//! member at least, and on until `request_timeout` has passed, so that a leader election (which
//! answers "no leader" for as long as it lasts) is waited out; a commit is retried too, but a retry that
//! finds a conflict after an attempt whose outcome is unknown reports the store unreachable
//! rather than a conflict the caller may have caused itself.
//!
//! Watches: one watch per gRPC stream, created with `require_leader` so a member cut off from
//! the cluster cancels it instead of serving stale events. The watch task asks for a progress
//! notification every `keepalive_interval` and reports the watch lost when nothing at all arrived
//! for `keepalive_interval + keepalive_timeout`: a member that hangs with the stream open is
//! noticed even if the HTTP/2 connection looks alive. Progress answers are used only as a sign
//! of life, not as "delivered up to": etcd 3.4 answers a progress request with the current
//! revision even while a catching-up watcher has not sent older events yet.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use etcd_client as etcd;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::config::fleet::FleetConfig;

use super::store::{
    Change, CommitOutcome, Entry, Guard, Lease, LeaseId, Revision, Snapshot, Store, StoreError,
    Txn, Watch, WatchBatch, WatchEvent, Write,
};

/// How lbx reaches its etcd cluster.
#[derive(Debug, Clone)]
pub struct EtcdSettings {
    /// `http://host:port` or `https://host:port` (with [`EtcdSettings::tls`]), one per member.
    pub endpoints: Vec<String>,
    /// Bound on establishing a TCP (and TLS) connection to one member.
    pub connect_timeout: Duration,
    /// Bound on one attempt of one request, from sending to the answer's headers.
    pub request_timeout: Duration,
    /// How often an HTTP/2 ping (and, on a watch, a progress request) checks that a member is alive.
    pub keepalive_interval: Duration,
    /// How long a ping may go unanswered before the connection counts as dead.
    pub keepalive_timeout: Duration,
    /// User and password, when the cluster has authentication on.
    pub user: Option<(String, String)>,
    pub tls: Option<EtcdTls>,
}

/// TLS towards etcd (rustls, with the aws-lc-rs provider the rest of lbx uses).
#[derive(Debug, Clone, Default)]
pub struct EtcdTls {
    /// PEM CA bundle that signed the members' certificates (otherwise the system's roots are not
    /// used: etcd clusters normally have their own CA).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate and key, for clusters that require client certificates.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl EtcdSettings {
    /// Settings for `endpoints` with defaults that notice a dead member within a few seconds.
    pub fn new(endpoints: Vec<String>) -> Self {
        Self {
            endpoints,
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(3),
            keepalive_interval: Duration::from_secs(2),
            keepalive_timeout: Duration::from_secs(2),
            user: None,
            tls: None,
        }
    }

    /// The settings a node's `[fleet]` section gives (checked already by its `check`): the
    /// password is read from its file here, so a rotated password is picked up on reconnect.
    /// One `keepalive` serves as both ping interval and timeout: a silent member is left within
    /// about twice it.
    pub fn from_config(config: &FleetConfig) -> Result<Self, StoreError> {
        let user = match (&config.username, &config.password_file) {
            (Some(user), Some(file)) => {
                let text = std::fs::read_to_string(file).map_err(|e| {
                    StoreError::Settings(format!(
                        "cannot read fleet.password_file {}: {e}",
                        file.display()
                    ))
                })?;
                let password = text.lines().next().unwrap_or_default().to_string();
                Some((user.clone(), password))
            }
            _ => None,
        };
        let tls = &config.tls;
        let uses_tls = tls.ca.is_some()
            || tls.cert.is_some()
            || config.endpoints.iter().any(|e| e.starts_with("https://"));
        Ok(Self {
            endpoints: config.endpoints.clone(),
            connect_timeout: config.connect_timeout,
            request_timeout: config.request_timeout,
            keepalive_interval: config.keepalive,
            keepalive_timeout: config.keepalive,
            user,
            tls: uses_tls.then(|| EtcdTls {
                ca_file: tls.ca.clone(),
                client_cert: tls.cert.clone().zip(tls.key.clone()),
            }),
        })
    }

    fn connect_options(&self) -> Result<etcd::ConnectOptions, StoreError> {
        let mut options = etcd::ConnectOptions::new()
            .with_connect_timeout(self.connect_timeout)
            .with_timeout(self.request_timeout)
            .with_keep_alive(self.keepalive_interval, self.keepalive_timeout)
            .with_keep_alive_while_idle(true)
            .with_require_leader(true);
        if let Some((user, password)) = &self.user {
            options = options
                .with_user(user.clone(), password.clone())
                .with_auto_token_refresh(true);
        }
        if let Some(tls) = &self.tls {
            let read = |path: &PathBuf, what: &str| {
                std::fs::read(path).map_err(|e| {
                    StoreError::Settings(format!("cannot read {what} {}: {e}", path.display()))
                })
            };
            let mut config = etcd::TlsOptions::new();
            if let Some(ca) = &tls.ca_file {
                config = config.ca_certificate(etcd::Certificate::from_pem(read(ca, "CA file")?));
            }
            if let Some((cert, key)) = &tls.client_cert {
                config = config.identity(etcd::Identity::from_pem(
                    read(cert, "client certificate")?,
                    read(key, "client key")?,
                ));
            }
            options = options.with_tls(config);
        }
        Ok(options)
    }

    /// How many attempts an operation gets at least: one per member, at least two (a member
    /// that just died may take the first).
    fn attempts(&self) -> usize {
        self.endpoints.len().clamp(2, 5)
    }

    /// Whether an operation whose attempts so far found the store unreachable tries again:
    /// for its [`attempts`](Self::attempts), and beyond them until `request_timeout` has passed
    /// since it started. A cluster electing a new leader answers "no leader" at once, for as long
    /// as the election takes (about a second with etcd's defaults, longer on a loaded machine):
    /// a few quick attempts would all land inside it and fail an operation that a moment later
    /// succeeds.
    fn tries_again(&self, attempts_made: usize, started: Instant) -> bool {
        attempts_made < self.attempts() || started.elapsed() < self.request_timeout
    }

    /// The pause before attempt `attempt` (1 for the first retry): long enough for the balancer
    /// to see a failed connection, short against an election.
    fn backoff(attempt: usize) -> Duration {
        Duration::from_millis((50 * attempt as u64).min(250))
    }
}

/// The fleet store on an etcd cluster. Cheap to clone (one shared connection pool and one
/// member prober, stopped when the last clone is dropped).
#[derive(Clone)]
pub struct EtcdStore {
    client: etcd::Client,
    _prober: Arc<AbortOnDrop>,
    settings: EtcdSettings,
    /// The endpoints as error messages name them.
    endpoints: String,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// A client for the cluster; connections are made on first use, so this succeeds while the
    /// cluster is down (unless a user is set: logging in needs a member).
    pub async fn connect(settings: EtcdSettings) -> Result<Self, StoreError> {
        if settings.endpoints.is_empty() {
            return Err(StoreError::Settings("no etcd endpoints".into()));
        }
        let mut settings = settings;
        // With a scheme, as the balancer keys them: removing an endpoint names it the same way.
        let scheme = if settings.tls.is_some() {
            "https://"
        } else {
            "http://"
        };
        for endpoint in &mut settings.endpoints {
            if !endpoint.contains("://") {
                *endpoint = format!("{scheme}{endpoint}");
            }
        }
        let endpoints = settings.endpoints.join(",");
        let options = settings.connect_options()?;
        let connecting = etcd::Client::connect(&settings.endpoints, Some(options.clone()));
        let client = match tokio::time::timeout(settings.request_timeout, connecting).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => return Err(classify(&endpoints, e)),
            Err(_) => {
                return Err(timed_out(
                    &endpoints,
                    "connecting",
                    settings.request_timeout,
                ));
            }
        };
        let prober = tokio::spawn(super::members::keep_only_answering_members(
            client.clone(),
            settings.endpoints.clone(),
            options,
            settings.keepalive_interval,
            settings.keepalive_timeout,
        ));
        Ok(Self {
            client,
            _prober: Arc::new(AbortOnDrop(prober)),
            settings,
            endpoints,
        })
    }

    /// The endpoints, comma-separated, as error messages name them.
    pub fn endpoints(&self) -> &str {
        &self.endpoints
    }

    /// Compact the store's history up to `revision` (watches from older revisions then report
    /// [`WatchEvent::Compacted`]). Physical: returns once the members have applied it.
    pub async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        self.retrying("compacting", |mut client| async move {
            client
                .compact(
                    revision,
                    Some(etcd::CompactionOptions::new().with_physical()),
                )
                .await
                .map(drop)
        })
        .await
    }

    /// Run `operation` with a fresh client handle until it succeeds, is refused, or every
    /// attempt found the store unreachable. Each attempt is bounded here as well as by tonic's
    /// request timeout, which does not cover waiting for a ready connection.
    async fn retrying<T, F, Fut>(&self, what: &str, operation: F) -> Result<T, StoreError>
    where
        F: Fn(etcd::Client) -> Fut,
        Fut: Future<Output = Result<T, etcd::Error>>,
    {
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            if attempt > 0 {
                tokio::time::sleep(EtcdSettings::backoff(attempt)).await;
            }
            attempt += 1;
            match self.attempt(what, operation(self.client.clone())).await {
                Err(e) if e.is_unreachable() && self.settings.tries_again(attempt, started) => {}
                other => return other,
            }
        }
    }

    async fn attempt<T>(
        &self,
        what: &str,
        operation: impl Future<Output = Result<T, etcd::Error>>,
    ) -> Result<T, StoreError> {
        let bound = self.settings.request_timeout + Duration::from_millis(100);
        match tokio::time::timeout(bound, operation).await {
            Ok(result) => result.map_err(|e| classify(&self.endpoints, e)),
            Err(_) => Err(timed_out(&self.endpoints, what, bound)),
        }
    }

    fn bad_answer(&self, detail: impl Into<String>) -> StoreError {
        StoreError::BadAnswer {
            endpoints: self.endpoints.clone(),
            detail: detail.into(),
        }
    }

    /// One page of a prefix read: at `revision` (0 = newest), keys from `start` on.
    async fn list_page(
        &self,
        prefix: &str,
        start: &[u8],
        revision: Revision,
    ) -> Result<etcd::GetResponse, StoreError> {
        let range_end = prefix_end(prefix.as_bytes());
        self.retrying("listing", |mut client| {
            let start = start.to_vec();
            let range_end = range_end.clone();
            async move {
                let options = etcd::GetOptions::new()
                    .with_range(range_end)
                    .with_revision(revision)
                    .with_limit(LIST_PAGE)
                    .with_sort(etcd::SortTarget::Key, etcd::SortOrder::Ascend);
                client.get(start, Some(options)).await
            }
        })
        .await
    }

    fn entry(&self, kv: &etcd::KeyValue) -> Result<Entry, StoreError> {
        let key = kv
            .key_str()
            .map_err(|e| self.bad_answer(format!("a key is not UTF-8: {e}")))?;
        Ok(Entry {
            key: key.to_string(),
            value: kv.value().to_vec(),
            mod_revision: kv.mod_revision(),
        })
    }

    fn revision_of(&self, header: Option<&etcd::ResponseHeader>) -> Result<Revision, StoreError> {
        header
            .map(|h| h.revision())
            .ok_or_else(|| self.bad_answer("an answer without a header"))
    }

    /// Keep `lease` alive until the task is aborted (the [`Lease`] dropped) or the store says it
    /// expired. A broken keep-alive stream is reopened (on whichever member answers).
    async fn keep_alive(self, lease: i64, ttl: Duration, alive: watch::Sender<bool>) {
        // A third of the TTL: two keep-alives may be lost before the lease expires.
        let every = (ttl / 3).max(Duration::from_millis(200));
        loop {
            let opened = self
                .retrying("keeping a lease alive", |mut client| async move {
                    client.lease_keep_alive(lease).await
                })
                .await;
            let (mut keeper, mut answers) = match opened {
                Ok(stream) => stream,
                Err(StoreError::Rejected { detail, .. }) => {
                    tracing::warn!(lease, "etcd lease expired: {detail}");
                    let _ = alive.send(false);
                    return;
                }
                Err(e) => {
                    tracing::warn!(lease, "cannot keep etcd lease alive: {e}");
                    tokio::time::sleep(every).await;
                    continue;
                }
            };
            loop {
                tokio::time::sleep(every).await;
                if keeper.keep_alive().await.is_err() {
                    break;
                }
                match tokio::time::timeout(self.settings.request_timeout, answers.message()).await {
                    Ok(Ok(Some(answer))) if answer.ttl() > 0 => continue,
                    Ok(Ok(Some(_))) => {
                        tracing::warn!(lease, "etcd lease expired");
                        let _ = alive.send(false);
                        return;
                    }
                    _ => break,
                }
            }
        }
    }
}

/// Stops a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Keys per page of a list: keeps each answer far below gRPC's 4 MiB message limit.
const LIST_PAGE: i64 = 500;

impl Store for EtcdStore {
    async fn list(&self, prefix: &str) -> Result<Snapshot, StoreError> {
        let mut revision = 0;
        let mut kvs = Vec::new();
        let mut start = prefix.as_bytes().to_vec();
        loop {
            let page = self.list_page(prefix, &start, revision).await?;
            if revision == 0 {
                // Later pages read at the first page's revision: one consistent snapshot.
                revision = self.revision_of(page.header())?;
            }
            for kv in page.kvs() {
                kvs.push(self.entry(kv)?);
            }
            match page.kvs().last() {
                Some(last) if page.more() => {
                    start = last.key().to_vec();
                    start.push(0);
                }
                _ => break,
            }
        }
        Ok(Snapshot { revision, kvs })
    }

    async fn commit(&self, txn: Txn) -> Result<CommitOutcome, StoreError> {
        let request = etcd_txn(&txn);
        let mut outcome_unknown = None;
        let started = Instant::now();
        let mut attempt = 0;
        while attempt == 0 || self.settings.tries_again(attempt, started) {
            if attempt > 0 {
                tokio::time::sleep(EtcdSettings::backoff(attempt)).await;
            }
            attempt += 1;
            let mut client = self.client.clone();
            let answer = self
                .attempt("committing", client.txn(request.clone()))
                .await;
            match answer {
                Ok(answer) if answer.succeeded() => {
                    let revision = self.revision_of(answer.header())?;
                    return Ok(CommitOutcome::Committed { revision });
                }
                Ok(_) => {
                    return match outcome_unknown {
                        // An earlier attempt may have committed, and that commit is what the
                        // guards now see: the caller must re-read, not treat it as someone
                        // else's change.
                        Some(StoreError::Unreachable { endpoints, detail }) => {
                            Err(StoreError::Unreachable {
                                endpoints,
                                detail: format!(
                                    "a guard failed on a retry after an attempt whose outcome is \
                                     unknown ({detail}); re-read the store"
                                ),
                            })
                        }
                        _ => Ok(CommitOutcome::Conflict),
                    };
                }
                Err(e) if e.is_unreachable() => outcome_unknown = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(outcome_unknown.expect("at least one attempt"))
    }

    async fn watch(&self, prefix: &str, from: Revision) -> Result<Watch, StoreError> {
        let range_end = prefix_end(prefix.as_bytes());
        let key = prefix.as_bytes().to_vec();
        let stream = self
            .retrying("starting a watch", |mut client| {
                let options = etcd::WatchOptions::new()
                    .with_range(range_end.clone())
                    .with_start_revision(from);
                let key = key.clone();
                async move {
                    let mut stream = client.watch(key, Some(options)).await?;
                    // The creation answer (or the cancellation, if `from` is compacted) comes
                    // first; waiting for it here makes a member that hangs count as a failed
                    // attempt rather than a watch that never delivers.
                    let first = stream.message().await?;
                    Ok((stream, first))
                }
            })
            .await?;
        let (events, receiver) = mpsc::channel(64);
        tokio::spawn(self.clone().run_watch(stream, events));
        Ok(Watch::from_channel(receiver))
    }

    async fn grant(&self, ttl: Duration) -> Result<Lease, StoreError> {
        let seconds = ttl.as_secs().max(1) as i64;
        let granted = self
            .retrying("granting a lease", |mut client| async move {
                client.lease_grant(seconds, None).await
            })
            .await?;
        let id = granted.id();
        let granted_ttl = Duration::from_secs(granted.ttl().max(1) as u64);
        let (alive, alive_receiver) = watch::channel(true);
        let keeper = tokio::spawn(self.clone().keep_alive(id, granted_ttl, alive));
        Ok(Lease::new(LeaseId(id), granted_ttl, alive_receiver, keeper))
    }

    async fn put_with_lease(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: &Lease,
    ) -> Result<Revision, StoreError> {
        let txn = Txn::new().put_with_lease(key, value, lease.id());
        match self.commit(txn).await? {
            CommitOutcome::Committed { revision } => Ok(revision),
            CommitOutcome::Conflict => {
                Err(self.bad_answer("an unguarded write reported a conflict"))
            }
        }
    }

    async fn revoke(&self, lease: Lease) -> Result<(), StoreError> {
        let id = lease.id().0;
        drop(lease);
        self.retrying("revoking a lease", |mut client| async move {
            client.lease_revoke(id).await.map(drop)
        })
        .await
    }
}

impl EtcdStore {
    /// Forward a watch's answers as [`WatchEvent`]s until it ends or the receiver is dropped.
    async fn run_watch(
        self,
        (mut stream, first): (etcd::WatchStream, Option<etcd::WatchResponse>),
        events: mpsc::Sender<WatchEvent>,
    ) {
        let silence = self.settings.keepalive_interval + self.settings.keepalive_timeout;
        let mut heard = Instant::now();
        let mut ask = tokio::time::interval(self.settings.keepalive_interval);
        ask.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pending = first.map(Ok);
        let end = loop {
            let answer = match pending.take() {
                Some(answer) => Some(answer),
                None => tokio::select! {
                    answer = stream.message() => answer.transpose(),
                    _ = ask.tick() => {
                        if heard.elapsed() > silence {
                            break WatchEvent::Lost(timed_out(&self.endpoints, "watching", silence));
                        }
                        if stream.request_progress().await.is_err() {
                            break WatchEvent::Lost(self.lost("the watch stream closed"));
                        }
                        continue;
                    }
                    _ = events.closed() => return,
                },
            };
            let answer = match answer {
                Some(Ok(answer)) => answer,
                Some(Err(e)) => break WatchEvent::Lost(classify(&self.endpoints, e)),
                None => break WatchEvent::Lost(self.lost("the member ended the watch stream")),
            };
            heard = Instant::now();
            if answer.canceled() {
                break if answer.compact_revision() > 0 {
                    WatchEvent::Compacted {
                        compact_revision: answer.compact_revision(),
                    }
                } else {
                    WatchEvent::Lost(self.lost(&format!(
                        "the member cancelled the watch: {}",
                        answer.cancel_reason()
                    )))
                };
            }
            if answer.events().is_empty() {
                continue; // created, or a progress notification: a sign of life only
            }
            let batch = match self.batch(&answer) {
                Ok(batch) => batch,
                Err(e) => break WatchEvent::Lost(e),
            };
            if events.send(WatchEvent::Batch(batch)).await.is_err() {
                return;
            }
        };
        let _ = events.send(end).await;
    }

    fn batch(&self, answer: &etcd::WatchResponse) -> Result<WatchBatch, StoreError> {
        let mut changes = Vec::with_capacity(answer.events().len());
        for event in answer.events() {
            let kv = event
                .kv()
                .ok_or_else(|| self.bad_answer("a watch event without a key"))?;
            changes.push(match event.event_type() {
                etcd::EventType::Put => Change::Put(self.entry(kv)?),
                etcd::EventType::Delete => Change::Delete {
                    key: self.entry(kv)?.key,
                    revision: kv.mod_revision(),
                },
            });
        }
        let revision = changes.iter().map(Change::revision).max().unwrap_or(0);
        Ok(WatchBatch { revision, changes })
    }

    fn lost(&self, detail: &str) -> StoreError {
        StoreError::Unreachable {
            endpoints: self.endpoints.clone(),
            detail: detail.to_string(),
        }
    }
}

/// The etcd transaction for `txn`.
fn etcd_txn(txn: &Txn) -> etcd::Txn {
    let compares: Vec<etcd::Compare> = txn
        .guards
        .iter()
        .map(|guard| match guard {
            Guard::ModRevision { key, revision } => {
                etcd::Compare::mod_revision(key.as_str(), etcd::CompareOp::Equal, *revision)
            }
            // A key that does not exist has create_revision 0 (etcd's idiom for "absent").
            Guard::Absent { key } => {
                etcd::Compare::create_revision(key.as_str(), etcd::CompareOp::Equal, 0)
            }
        })
        .collect();
    let operations: Vec<etcd::TxnOp> = txn
        .writes
        .iter()
        .map(|write| match write {
            Write::Put { key, value, lease } => {
                let options = lease.map(|lease| etcd::PutOptions::new().with_lease(lease.0));
                etcd::TxnOp::put(key.as_str(), value.clone(), options)
            }
            Write::Delete { key } => etcd::TxnOp::delete(key.as_str(), None),
            Write::DeletePrefix { prefix } => etcd::TxnOp::delete(
                prefix.as_str(),
                Some(etcd::DeleteOptions::new().with_range(prefix_end(prefix.as_bytes()))),
            ),
        })
        .collect();
    etcd::Txn::new().when(compares).and_then(operations)
}

/// The first key after every key starting with `prefix` (etcd's range end for a prefix); the
/// empty prefix means every key, whose range end is "\0".
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn timed_out(endpoints: &str, what: &str, after: Duration) -> StoreError {
    StoreError::Unreachable {
        endpoints: endpoints.to_string(),
        detail: format!("no answer {what} within {after:?}"),
    }
}

/// Which kind of failure an etcd-client error is.
fn classify(endpoints: &str, error: etcd::Error) -> StoreError {
    let endpoints = endpoints.to_string();
    let (kind, detail): (fn(String, String) -> StoreError, String) = match error {
        etcd::Error::GRpcStatus(status) => {
            let detail = format!("{:?}: {}", status.code(), status.message());
            // gRPC codes, as numbers so that lbx does not name tonic's types: CANCELLED (tonic's
            // own request timeout), UNKNOWN (tonic's transport errors without a status),
            // DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED ("too many requests"), UNAVAILABLE (no
            // leader, leader changed, connection refused).
            match status.code() as i32 {
                1 | 2 | 4 | 8 | 14 => (unreachable, detail),
                _ => (rejected, detail),
            }
        }
        etcd::Error::TransportError(e) => (unreachable, format!("transport: {e}")),
        etcd::Error::IoError(e) => (unreachable, format!("i/o: {e}")),
        etcd::Error::WatchError(e) => (unreachable, format!("watch stream: {e}")),
        etcd::Error::LeaseKeepAliveError(e) if e.contains("not found") => {
            (rejected, format!("lease: {e}"))
        }
        etcd::Error::LeaseKeepAliveError(e) => (unreachable, format!("lease keep-alive: {e}")),
        etcd::Error::Utf8Error(e) => (bad_answer, e.to_string()),
        e @ (etcd::Error::InvalidArgs(_)
        | etcd::Error::InvalidUri(_)
        | etcd::Error::InvalidMetadataValue(_)
        | etcd::Error::EndpointError(_)
        | etcd::Error::EndpointsNotManaged) => {
            return StoreError::Settings(format!("etcd at {endpoints}: {e}"));
        }
        other => (unreachable, other.to_string()),
    };
    kind(endpoints, detail)
}

fn unreachable(endpoints: String, detail: String) -> StoreError {
    StoreError::Unreachable { endpoints, detail }
}

fn rejected(endpoints: String, detail: String) -> StoreError {
    StoreError::Rejected { endpoints, detail }
}

fn bad_answer(endpoints: String, detail: String) -> StoreError {
    StoreError::BadAnswer { endpoints, detail }
}

#[cfg(test)]
mod tests {
    use super::{EtcdSettings, EtcdStore, EtcdTls, StoreError, prefix_end};

    #[tokio::test]
    async fn settings_that_cannot_work_are_refused_naming_the_problem() {
        let none = EtcdStore::connect(EtcdSettings::new(Vec::new())).await;
        assert!(matches!(none, Err(StoreError::Settings(e)) if e.contains("no etcd endpoints")));

        let mut settings = EtcdSettings::new(vec!["127.0.0.1:2379".into()]);
        settings.tls = Some(EtcdTls {
            ca_file: Some("/nonexistent/lbx-ca.pem".into()),
            client_cert: None,
        });
        let unreadable = EtcdStore::connect(settings).await;
        assert!(
            matches!(unreadable, Err(StoreError::Settings(e)) if e.contains("/nonexistent/lbx-ca.pem"))
        );
    }

    #[test]
    fn a_fleet_section_gives_the_store_settings_with_the_password_from_its_file() {
        let dir = std::env::temp_dir().join(format!("lbx-etcd-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let password = dir.join("password");
        std::fs::write(&password, "s3cret\nignored\n").unwrap();
        let config: crate::config::fleet::FleetConfig = toml::from_str(&format!(
            "endpoints = [\"https://10.0.0.1:2379\"]\nusername = \"lbx\"\n\
             password_file = {password:?}\nkeepalive = \"3s\"\n\
             [tls]\nca = \"/etc/lbx/ca.pem\"\ncert = \"/etc/lbx/c.pem\"\nkey = \"/etc/lbx/c.key\"\n"
        ))
        .unwrap();
        let settings = EtcdSettings::from_config(&config).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(settings.endpoints, ["https://10.0.0.1:2379"]);
        assert_eq!(settings.user, Some(("lbx".into(), "s3cret".into())));
        assert_eq!(
            settings.keepalive_interval,
            std::time::Duration::from_secs(3)
        );
        assert_eq!(
            settings.keepalive_timeout,
            std::time::Duration::from_secs(3)
        );
        let tls = settings.tls.unwrap();
        assert_eq!(tls.ca_file, Some("/etc/lbx/ca.pem".into()));
        assert_eq!(
            tls.client_cert,
            Some(("/etc/lbx/c.pem".into(), "/etc/lbx/c.key".into()))
        );
    }

    #[test]
    fn a_prefix_range_ends_after_its_last_key() {
        assert_eq!(prefix_end(b"/lbx/"), b"/lbx0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b""), vec![0]);
    }
}
