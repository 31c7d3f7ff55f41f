//! PostgreSQL servers in Docker containers, for tests: the server of the PostgreSQL suites when
//! `ORBSTORE_TEST_POSTGRES_URL` is unset and a Docker engine answers ([`postgres_url`]), and
//! private servers that fault tests pause, restart, kill and cut off ([`PgContainer`]).
//!
//! The image is `ORBSTORE_TEST_POSTGRES_IMAGE`, by default `postgres:16-alpine` (pulled by the
//! engine if it has a registry); where none is reachable, `scripts/build-test-images.sh` builds
//! one from Debian's packages. Either must start a server trusting connections from any host
//! (the official image is given `POSTGRES_HOST_AUTH_METHOD=trust`).
//!
//! Written on [`bollard`] (the Docker API client testcontainers is itself built on) rather than
//! with testcontainers: testcontainers 0.28 sends every request as Docker API 1.53 without
//! negotiating, which every engine before Docker 29 refuses ("client version 1.53 is too new";
//! Debian 12's `docker.io` 20.10 tops out at 1.41), while bollard negotiates the version. The
//! part written here is small: create, start, wait until a query answers, remove.
//!
//! Nothing is left behind: a [`PgContainer`] is removed when dropped (also while a test
//! unwinds from a panic), the shared container of [`postgres_url`] when the test process exits
//! (`atexit`), and containers of test processes that died without either (a SIGKILL) are
//! removed by the next process that starts one: each carries the label [`LABEL`] with the
//! process id that owns it.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
use bollard::query_parameters::{
    CreateContainerOptions, KillContainerOptions, ListContainersOptions, RemoveContainerOptions,
    RestartContainerOptions,
};
use bollard::Docker;
use futures::StreamExt;

/// The variable naming the PostgreSQL image.
pub const IMAGE_VAR: &str = "ORBSTORE_TEST_POSTGRES_IMAGE";
/// The image used when [`IMAGE_VAR`] is unset.
pub const DEFAULT_IMAGE: &str = "postgres:16-alpine";
/// The label every test container carries; its value is the owning process's id.
pub const LABEL: &str = "org.orbstore.test.pid";
/// How long a new container may take to answer a query.
pub const START_TIMEOUT: Duration = Duration::from_secs(90);

/// A failure to talk to Docker or to start a server, as text for the test's panic message.
pub type Result<T> = std::result::Result<T, String>;

async fn docker() -> Result<Docker> {
    let d = Docker::connect_with_defaults().map_err(|e| format!("no Docker engine: {e}"))?;
    d.negotiate_version().await.map_err(|e| format!("the Docker engine does not answer: {e}"))
}

/// Runs `f` on a runtime of its own in a thread of its own: for the synchronous entry points,
/// which may be called from inside a test's runtime (where `block_on` is refused) or from an
/// `atexit` handler (where the main thread's thread-locals are already gone).
fn on_own_runtime<T: Send + 'static>(f: impl std::future::Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        rt.block_on(f)
    })
    .join()
    .expect("the Docker thread panicked")
}

/// Whether a Docker engine answers a ping (within 5 s).
pub fn docker_answers() -> bool {
    on_own_runtime(async {
        tokio::time::timeout(Duration::from_secs(5), async {
            docker().await?.ping().await.map_err(|e| e.to_string())
        })
        .await
        .is_ok_and(|r| r.is_ok())
    })
}

/// A free TCP port on 127.0.0.1, to publish a container's port on: fixed when the container is
/// created, so that it stays the same across `docker restart` (a port the engine picks may not).
fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// Removes the test containers whose owning process is gone.
async fn sweep(d: &Docker) {
    let filters = HashMap::from([("label".to_owned(), vec![LABEL.to_owned()])]);
    let Ok(list) = d
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await
    else {
        return;
    };
    for c in list {
        let pid = c.labels.as_ref().and_then(|l| l.get(LABEL)).and_then(|p| p.parse::<i32>().ok());
        // kill(pid, 0): ESRCH means no such process (any other answer: alive, leave it).
        let gone = pid.is_some_and(|p| {
            // SAFETY: signal 0 only checks that the process exists.
            let refused = unsafe { libc::kill(p, 0) } != 0;
            refused && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
        });
        if let (true, Some(id)) = (gone, c.id) {
            let _ = d
                .remove_container(
                    &id,
                    Some(RemoveContainerOptions { force: true, v: true, ..Default::default() }),
                )
                .await;
        }
    }
}

/// The ids of the test containers (running or not) that process `pid` owns.
pub async fn containers_of(pid: u32) -> Result<Vec<String>> {
    let d = docker().await?;
    let filters = HashMap::from([("label".to_owned(), vec![format!("{LABEL}={pid}")])]);
    let list = d
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .map_err(|e| format!("list containers: {e}"))?;
    Ok(list.into_iter().filter_map(|c| c.id).collect())
}

/// A PostgreSQL server in a container of its own, removed when dropped.
#[derive(Debug)]
pub struct PgContainer {
    docker: Docker,
    id: String,
    port: u16,
    /// Removed already (by [`PgContainer::remove`]).
    removed: bool,
}

impl PgContainer {
    /// Creates and starts a container of [`IMAGE_VAR`]'s image, and waits until its server
    /// answers a query (at most [`START_TIMEOUT`]).
    pub async fn start() -> Result<PgContainer> {
        let image = std::env::var(IMAGE_VAR)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| DEFAULT_IMAGE.to_owned());
        let docker = docker().await?;
        sweep(&docker).await;
        let port = free_port()?;
        let body = ContainerCreateBody {
            image: Some(image.clone()),
            env: Some(vec!["POSTGRES_HOST_AUTH_METHOD=trust".to_owned()]),
            labels: Some(HashMap::from([(LABEL.to_owned(), std::process::id().to_string())])),
            exposed_ports: Some(vec!["5432/tcp".to_owned()]),
            host_config: Some(HostConfig {
                port_bindings: Some(HashMap::from([(
                    "5432/tcp".to_owned(),
                    Some(vec![PortBinding {
                        host_ip: Some("127.0.0.1".to_owned()),
                        host_port: Some(port.to_string()),
                    }]),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        };
        let created = docker
            .create_container(Some(CreateContainerOptions::default()), body)
            .await
            .map_err(|e| format!("cannot create a container of {image} (set {IMAGE_VAR}; scripts/build-test-images.sh builds one without a registry): {e}"))?;
        let container = PgContainer { docker, id: created.id, port, removed: false };
        container
            .docker
            .start_container(&container.id, None)
            .await
            .map_err(|e| format!("cannot start {image}: {e}"))?;
        container.wait_ready(START_TIMEOUT).await?;
        Ok(container)
    }

    /// The container's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The server's URL (database `postgres`, user `postgres`, no password).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The port published on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Waits until the server answers `SELECT 1` through the published port.
    pub async fn wait_ready(&self, within: Duration) -> Result<()> {
        let start = Instant::now();
        let conninfo =
            format!("host=127.0.0.1 port={} user=postgres dbname=postgres connect_timeout=2", self.port);
        loop {
            let attempt = async {
                let (client, conn) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls).await?;
                let task = tokio::spawn(conn);
                let answered = client.simple_query("SELECT 1").await.map(|_| ());
                drop(client);
                let _ = task.await;
                answered
            };
            let error = match tokio::time::timeout(Duration::from_secs(3), attempt).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => e.to_string(),
                Err(_) => "no answer within 3 s".to_owned(),
            };
            if start.elapsed() > within {
                let logs = self.logs().await;
                return Err(format!("the PostgreSQL container {} did not answer within {within:?} ({error}); its log:\n{logs}", self.id));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The container's last 40 log lines.
    pub async fn logs(&self) -> String {
        let options = bollard::query_parameters::LogsOptions {
            stdout: true,
            stderr: true,
            tail: "40".to_owned(),
            ..Default::default()
        };
        let mut out = String::new();
        let mut stream = self.docker.logs(&self.id, Some(options));
        while let Some(Ok(chunk)) = stream.next().await {
            out.push_str(&chunk.to_string());
        }
        out
    }

    /// `docker pause`: the server's processes are frozen; its port still accepts connections
    /// (the kernel answers), nothing is ever answered.
    pub async fn pause(&self) -> Result<()> {
        self.docker.pause_container(&self.id).await.map_err(|e| format!("pause: {e}"))
    }

    /// `docker unpause`.
    pub async fn unpause(&self) -> Result<()> {
        self.docker.unpause_container(&self.id).await.map_err(|e| format!("unpause: {e}"))
    }

    /// `docker restart` (a fast shutdown, then a start on the same data and port), waiting until
    /// the server answers again.
    pub async fn restart(&self) -> Result<()> {
        self.docker
            .restart_container(&self.id, Some(RestartContainerOptions { t: Some(10), ..Default::default() }))
            .await
            .map_err(|e| format!("restart: {e}"))?;
        self.wait_ready(START_TIMEOUT).await
    }

    /// `docker kill`: the server dies at once (SIGKILL), every connection with it.
    pub async fn kill(&self) -> Result<()> {
        self.docker
            .kill_container(&self.id, Some(KillContainerOptions { signal: "KILL".to_owned() }))
            .await
            .map_err(|e| format!("kill: {e}"))
    }

    /// Starts a stopped or killed container again (same data, same port) and waits for it.
    pub async fn start_again(&self) -> Result<()> {
        self.docker.start_container(&self.id, None).await.map_err(|e| format!("start: {e}"))?;
        self.wait_ready(START_TIMEOUT).await
    }

    /// `docker network disconnect bridge`: the server runs on, unreachable; connections to it
    /// stay open on the client's side with nothing coming back.
    pub async fn disconnect(&self) -> Result<()> {
        let request =
            bollard::models::NetworkDisconnectRequest { container: self.id.clone(), force: Some(true) };
        self.docker.disconnect_network("bridge", request).await.map_err(|e| format!("disconnect: {e}"))
    }

    /// `docker network connect bridge`, waiting until the server answers through its port again.
    pub async fn reconnect(&self) -> Result<()> {
        let request =
            bollard::models::NetworkConnectRequest { container: self.id.clone(), ..Default::default() };
        self.docker.connect_network("bridge", request).await.map_err(|e| format!("connect: {e}"))?;
        self.wait_ready(START_TIMEOUT).await
    }

    /// Runs `psql -tA -c sql` inside the container (over its own loopback, so it works while the
    /// container is cut off from the network) and returns what it printed.
    pub async fn psql(&self, sql: &str) -> Result<String> {
        use bollard::exec::{CreateExecOptions, StartExecResults};
        let cmd = vec!["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-tA", "-c", sql];
        let exec = self
            .docker
            .create_exec(
                &self.id,
                CreateExecOptions {
                    cmd: Some(cmd),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| format!("psql: {e}"))?;
        let mut out = String::new();
        if let StartExecResults::Attached { mut output, .. } =
            self.docker.start_exec(&exec.id, None).await.map_err(|e| format!("psql: {e}"))?
        {
            while let Some(Ok(chunk)) = output.next().await {
                out.push_str(&chunk.to_string());
            }
        }
        Ok(out.trim().to_owned())
    }

    /// Removes the container now (what dropping it does, reported).
    pub async fn remove(mut self) -> Result<()> {
        self.removed = true;
        remove(&self.docker, &self.id).await
    }
}

async fn remove(d: &Docker, id: &str) -> Result<()> {
    d.remove_container(id, Some(RemoveContainerOptions { force: true, v: true, ..Default::default() }))
        .await
        .map_err(|e| format!("remove the container {id}: {e}"))
}

impl Drop for PgContainer {
    fn drop(&mut self) {
        if !self.removed {
            let id = self.id.clone();
            // A client of its own: this one's connections belong to the test's runtime, which
            // may be shutting down.
            let _ = on_own_runtime(async move { remove(&docker().await?, &id).await });
        }
    }
}

/// The shared container's id and URL.
struct Shared {
    id: String,
    url: String,
}

static SHARED: OnceLock<std::result::Result<Shared, String>> = OnceLock::new();

extern "C" fn remove_shared_at_exit() {
    if let Some(Ok(shared)) = SHARED.get() {
        let id = shared.id.clone();
        if let Err(e) = on_own_runtime(async move { remove(&docker().await?, &id).await }) {
            eprintln!("orbstore-testkit: {e}");
        }
    }
}

/// The PostgreSQL server for tests: `ORBSTORE_TEST_POSTGRES_URL` when set; otherwise, when a
/// Docker engine answers, a container started on first use (one per test process, removed when
/// the process exits); otherwise `None`. Each test still works in a schema or database of its
/// own. A container that fails to start panics, naming why (a test asked for a server).
pub fn postgres_url() -> Option<String> {
    if let Some(url) = std::env::var("ORBSTORE_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty()) {
        return Some(url);
    }
    let shared = SHARED.get_or_init(|| {
        if !docker_answers() {
            return Err("no Docker engine answers".to_owned());
        }
        let container = on_own_runtime(PgContainer::start())?;
        let shared = Shared { id: container.id.clone(), url: container.url() };
        eprintln!(
            "orbstore-testkit: PostgreSQL container {} at {} (removed when this process exits)",
            shared.id, shared.url
        );
        // From here the container lives until the process exits.
        std::mem::forget(container);
        // SAFETY: registers a plain function without arguments.
        unsafe { libc::atexit(remove_shared_at_exit) };
        Ok(shared)
    });
    match shared {
        Ok(s) => Some(s.url.clone()),
        Err(e) if e == "no Docker engine answers" => None,
        Err(e) => {
            panic!("ORBSTORE_TEST_POSTGRES_URL is unset and the PostgreSQL container did not start: {e}")
        }
    }
}
