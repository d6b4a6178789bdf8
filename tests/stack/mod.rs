//! `spawn_stack()`: the whole system as a user runs it. The real `clawgate up` binary on a free
//! loopback port (Router, WebChat and an in-process worker), its queue and store on the
//! emulator (SQS + DynamoDB when `AWS_ENDPOINT_URL` is set, each stack with its own queue and
//! table) or on SQLite, Docker sandboxes from the FROM-scratch test image, and fake Telegram,
//! Slack and Anthropic servers that speak the real wire formats.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::common;

mod post;
use crate::fakes::bluebubbles::BLUEBUBBLES_PASSWORD as BB_PASSWORD;
use crate::fakes::discord::{DISCORD_BOT, DISCORD_TOKEN};
use crate::fakes::whatsapp::WHATSAPP_TOKEN as WA_TOKEN;
use crate::fakes::zalo::ZALO_TOKEN;
use crate::fakes::{last_tool_result, Fakes, Reply, Script};
#[allow(unused_imports)] // each test binary uses some of them
pub use post::{discord_key, whatsapp_text};

pub const TG_SECRET: &str = "e2e_secret-1";
pub const TG_TOKEN: &str = "4242:E2ETOKEN";
pub const SLACK_SECRET: &str = "e2e-slack-signing-secret";
pub const WA_SECRET: &str = "e2e-whatsapp-app-secret";
/// The business number's id the stack's WhatsApp config names.
pub const WA_PHONE_ID: &str = "106540352242922";
/// The Google Chat app's audience (its project number) in the stack's config.
pub const GOOGLE_AUDIENCE: &str = "123456789012";
/// The Teams tenant, owner (Entra object id) and listed team of the fixtures.
pub const MSTEAMS_TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const MSTEAMS_OWNER: &str = "6b1f7d9e-2c4a-4e57-9a1d-0f3b8c5e7a21";
pub const MSTEAMS_TEAM: &str = "19:f00dfeedf00dfeedf00dfeedf00dfeed@thread.tacv2";

/// The Zalo app and the OA secret key the stack's config names.
pub const ZALO_APP: &str = "2553928453557884079";
pub const ZALO_SECRET: &str = "zalo-oa-secret-e2e";

/// The Discord user on the stack's `allowFrom`, and the guild it lists.
pub const DISCORD_OWNER: &str = "1000000000000000042";
pub const DISCORD_GUILD: &str = "1100000000000000001";

/// Where a stack keeps its queue and state.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Backend {
    /// SQS and DynamoDB on the emulator (`clawgate up --aws`).
    Emulator,
    /// SQLite files under the state directory (plain `clawgate up`).
    Sqlite,
}

impl Backend {
    /// The emulator when `AWS_ENDPOINT_URL` is set; else SQLite, unless the suite demands AWS.
    pub fn from_env() -> Backend {
        if std::env::var("AWS_ENDPOINT_URL").is_ok() {
            Backend::Emulator
        } else if std::env::var("CLAWGATE_REQUIRE_AWS").is_ok_and(|v| v == "1") {
            panic!("CLAWGATE_REQUIRE_AWS=1 but AWS_ENDPOINT_URL is not set");
        } else {
            Backend::Sqlite
        }
    }
}

pub struct StackOptions {
    pub backend: Backend,
    pub docker: bool,
    pub gateway_token: Option<String>,
    /// The sandbox mode with Docker (default `all`).
    pub mode: &'static str,
    /// More keys inside `agents.defaults.sandbox` (with Docker), e.g. `sessionToolsVisibility: "all",`.
    pub sandbox_extra: &'static str,
    /// More top-level keys, e.g. `tools: { … },` or `limits: { … },` (`{fakes}` is replaced by
    /// the fake platforms' base URL).
    pub extra: String,
    /// `agents.defaults.model`, as JSON5 (a string, or `{ primary, fallbacks }`).
    pub model: String,
    /// More keys inside `models`, e.g. `pricing: { … },`.
    pub models_extra: &'static str,
    /// More keys inside `agents`, e.g. `list: [ … ],`.
    pub agents_extra: String,
    /// More keys inside `agents.defaults`, e.g. `contextTokens: 2000,`.
    pub defaults_extra: &'static str,
    /// More keys inside `models.providers.anthropic`, e.g. `apiKeys: ["…"],`.
    pub anthropic_extra: &'static str,
    /// More keys inside `agents.defaults.sandbox.docker` (with Docker), e.g. `env: { … },`.
    pub docker_extra: &'static str,
    /// Variables set in `clawgate up`'s environment (on top of the test's own).
    pub env: Vec<(&'static str, String)>,
    /// Telegram without a webhook secret: `clawgate up` long-polls the fake instead.
    pub telegram_polling: bool,
    /// Slack with an app token and no signing secret: `clawgate up` uses Socket Mode.
    pub slack_socket: bool,
    /// Discord with a bot token: `clawgate up` connects to the (fake) Gateway.
    pub discord_gateway: bool,
    /// Signal with the bot's account: `clawgate up` reads the (fake) signal-cli event stream.
    pub signal: bool,
    /// `channels.telegram.streaming` and `channels.slack.streaming`: `off` by default here, so
    /// a test reads the answer from one `sendMessage`; the preview tests turn it on.
    pub streaming: &'static str,
}

impl StackOptions {
    /// The embedded backend and no Docker: what a channel test needs.
    pub fn no_docker() -> StackOptions {
        StackOptions {
            backend: Backend::Sqlite,
            docker: false,
            ..Default::default()
        }
    }
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            backend: Backend::from_env(),
            docker: true,
            gateway_token: None,
            mode: "all",
            sandbox_extra: "",
            extra: String::new(),
            model: r#""anthropic/claude-test""#.into(),
            models_extra: "",
            agents_extra: String::new(),
            defaults_extra: "",
            anthropic_extra: "",
            docker_extra: "",
            env: Vec::new(),
            telegram_polling: false,
            slack_socket: false,
            discord_gateway: false,
            signal: false,
            streaming: "off",
        }
    }
}

/// Kills the process however the test ends.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub struct Stack {
    pub base_url: String,
    pub fakes: Fakes,
    pub config_path: PathBuf,
    pub state_dir: PathBuf,
    pub workspace: PathBuf,
    pub backend: Backend,
    pub http: reqwest::Client,
    /// Everything `clawgate up` printed to stderr.
    pub log: Arc<Mutex<Vec<String>>>,
    env: Vec<(&'static str, String)>,
    process: Option<KillOnDrop>,
    sandbox: Option<common::Sandbox>,
    aws: Option<(
        infra::queue::sqs::SqsQueue,
        infra::store::dynamo::DynamoStore,
    )>,
    _dir: tempfile::TempDir,
}

pub async fn spawn_stack(script: Script, options: StackOptions) -> Stack {
    let dir = tempfile::tempdir().unwrap();
    let fakes = Fakes::start(script).await;
    let sandbox = options.docker.then(common::Sandbox::new);
    let workspace = match &sandbox {
        Some(sb) => sb.workspace(),
        None => dir.path().join("ws"),
    };
    let sandbox_config = match &sandbox {
        Some(sb) => format!(
            r#"mode: "{mode}", scope: "session", workspaceAccess: "rw", workspaceRoot: "{root}", {extra}
               docker: {{ image: "{image}", containerPrefix: "{prefix}", memory: "128m", pidsLimit: 64, {docker_extra} }}"#,
            docker_extra = options.docker_extra,
            mode = options.mode,
            extra = options.sandbox_extra,
            root = sb.dir.path().join("sbx").display(),
            image = common::TEST_IMAGE,
            prefix = sb.prefix,
        ),
        None => r#"mode: "off""#.to_string(),
    };
    let mut aws = None;
    let backends = match options.backend {
        // Visibility 5 s: on a queue shared across stacks (the Terraform-made one), a killed
        // stack's pending long poll can still take the next stack's message; it is back in 5 s.
        Backend::Sqlite => "queue: { visibilityTimeoutSeconds: 5 },".to_string(),
        Backend::Emulator => match (
            std::env::var("CLAWGATE_E2E_QUEUE_URL"),
            std::env::var("CLAWGATE_E2E_STATE_TABLE"),
        ) {
            // The queue and table Terraform made (scripts/terraform-check): used, never deleted.
            // Tests then share one queue, so that run uses --test-threads=1.
            (Ok(url), Ok(table)) => format!(
                r#"queue: {{ backend: "sqs", url: "{url}", visibilityTimeoutSeconds: 5 }}, state: {{ backend: "dynamodb", table: "{table}" }},"#
            ),
            _ => {
                let sdk = infra::aws::load_sdk_config().await;
                let id = ulid::Ulid::new().to_string().to_lowercase();
                let queue = infra::queue::sqs::SqsQueue::create_fifo(
                    &sdk,
                    &format!("cg-e2e-{id}"),
                    3,
                    Duration::from_secs(30),
                )
                .await
                .unwrap();
                let table = format!("cg-e2e-{id}");
                let store = infra::store::dynamo::DynamoStore::create_table(&sdk, &table)
                    .await
                    .unwrap();
                let text = format!(
                    r#"queue: {{ backend: "sqs", url: "{}", visibilityTimeoutSeconds: 5 }}, state: {{ backend: "dynamodb", table: "{table}" }},"#,
                    queue.url()
                );
                aws = Some((queue, store));
                text
            }
        },
    };
    let token = options
        .gateway_token
        .map(|t| format!(r#"gateway: {{ token: "{t}" }},"#))
        .unwrap_or_default();
    let config = format!(
        r#"{{
          agents: {{ defaults: {{ model: {model}, workspace: "{ws}", {defaults_extra} sandbox: {{ {sandbox_config} }} }}, {agents_extra} }},
          models: {{ providers: {{ anthropic: {{ apiKey: "sk-ant-e2e", baseUrl: "{base}", {anthropic_extra} }} }}, {models_extra} }},
          channels: {{
            telegram: {{ botToken: "{TG_TOKEN}", {tg_secret} apiBase: "{base}", botUsername: "clawgate_bot", streaming: "{streaming}",
                        dmPolicy: "allowlist", allowFrom: [12345, {BURST_USER}] }},
            slack: {{ botToken: "xoxb-e2e", {slack_auth} apiBase: "{base}", streaming: "{streaming}",
                     dmPolicy: "allowlist", allowFrom: ["U2147483697"], channels: {{ C024BE91L: {{}} }} }},
            whatsapp: {{ accessToken: "{WA_TOKEN}", phoneNumberId: "{WA_PHONE_ID}", appSecret: "{WA_SECRET}",
                        verifyToken: "e2e-verify", apiBase: "{base}", dmPolicy: "allowlist", allowFrom: ["+16505551234"] }},
            discord: {{ {discord_token} applicationId: "{DISCORD_BOT}", publicKey: "{discord_key}", apiBase: "{base}/api/v10",
                       dmPolicy: "allowlist", allowFrom: ["{DISCORD_OWNER}"], guilds: {{ "{DISCORD_GUILD}": {{}} }} }},
            bluebubbles: {{ serverUrl: "{base}", password: "{BB_PASSWORD}", dmPolicy: "allowlist", allowFrom: ["+15551234567"] }},
            {signal}
            googlechat: {{ audience: "{GOOGLE_AUDIENCE}", jwksUrl: "{base}/googlechat/jwks", apiBase: "{base}",
                          serviceAccount: {service_account}, dmPolicy: "allowlist",
                          allowFrom: ["users/112233445566778899001"], groups: {{ "spaces/AAAAteamspace": {{}} }} }},
            msteams: {{ appId: "{teams_app}", appPassword: "{teams_password}", tenantId: "{MSTEAMS_TENANT}",
                       openIdMetadataUrl: "{base}/msteams/openid", tokenUrl: "{base}/msteams/token",
                       serviceUrl: "{base}/msteams/service/", streaming: "{streaming}", dmPolicy: "allowlist",
                       allowFrom: ["{MSTEAMS_OWNER}"], teams: {{ "{MSTEAMS_TEAM}": {{}} }} }},
            matrix: {{ homeserver: "{base}", userId: "{matrix_bot}", asToken: "{matrix_as}", hsToken: "{matrix_hs}",
                      dm: {{ policy: "allowlist", allowFrom: ["@ada:example.org"] }}, groups: {{ "!ops:example.org": {{}} }},
                      autoJoin: "allowlist", autoJoinAllowlist: ["!ops:example.org"], streaming: "{streaming}" }},
            zalo: {{ apiBase: "{base}", appId: "{ZALO_APP}", oaSecretKey: "{ZALO_SECRET}", accessToken: "{ZALO_TOKEN}",
                    dmPolicy: "allowlist", allowFrom: ["6142494823123456789"] }},
          }},
          {backends}
          {token}
          {extra}
        }}"#,
        // `{fakes}` in `extra` is the fake platforms' base URL.
        extra = options.extra.replace("{fakes}", &fakes.base_url),
        model = options.model,
        models_extra = options.models_extra,
        agents_extra = options.agents_extra,
        defaults_extra = options.defaults_extra,
        anthropic_extra = options.anthropic_extra,
        streaming = options.streaming,
        slack_auth = if options.slack_socket {
            r#"appToken: "xapp-1-A1-e2e","#.to_string()
        } else {
            format!(r#"signingSecret: "{SLACK_SECRET}","#)
        },
        tg_secret = if options.telegram_polling {
            String::new()
        } else {
            format!(r#"webhookSecret: "{TG_SECRET}","#)
        },
        discord_token = if options.discord_gateway {
            format!(r#"token: "{DISCORD_TOKEN}","#)
        } else {
            String::new()
        },
        discord_key = hex::encode(discord_key().verifying_key().to_bytes()),
        signal = if options.signal {
            format!(
                r#"signal: {{ httpUrl: "{}", account: "+15550001111", dmPolicy: "allowlist", allowFrom: ["+15551234567"],
                         groups: {{ "S2V5Q2hhaW5Hcm91cElkRm9yVGVzdGluZz0=": {{}} }} }},"#,
                fakes.base_url
            )
        } else {
            String::new()
        },
        service_account = serde_json::to_string(
            &json!({"type": "service_account",
            "client_email": crate::fakes::googlechat::CHAT_SERVICE_ACCOUNT,
            "private_key": crate::fakes::googlechat::GOOGLE_TEST_KEY,
            "token_uri": format!("{}/googlechat/token", fakes.base_url)})
            .to_string()
        )
        .unwrap(),
        matrix_bot = crate::fakes::matrix::MATRIX_BOT,
        matrix_as = crate::fakes::matrix::MATRIX_AS_TOKEN,
        matrix_hs = crate::fakes::matrix::MATRIX_HS_TOKEN,
        teams_app = crate::fakes::msteams::MSTEAMS_APP_ID,
        teams_password = crate::fakes::msteams::MSTEAMS_APP_PASSWORD,
        ws = workspace.display(),
        base = fakes.base_url,
    );
    let config_path = dir.path().join("clawgate.json5");
    std::fs::write(&config_path, config).unwrap();
    let state_dir = dir.path().join("state");
    let mut stack = Stack {
        base_url: String::new(),
        fakes,
        config_path,
        state_dir,
        workspace,
        backend: options.backend,
        http: reqwest::Client::new(),
        log: Arc::default(),
        env: options.env,
        process: None,
        sandbox,
        aws,
        _dir: dir,
    };
    stack.start();
    stack
}

impl Stack {
    /// Starts `clawgate up` and waits for its banner (the listening address).
    pub fn start(&mut self) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_clawgate"));
        command
            .arg("--config")
            .arg(&self.config_path)
            .args(["up", "--port", "0", "--drain-seconds", "5", "--state-dir"])
            .arg(&self.state_dir);
        if self.backend == Backend::Emulator {
            command.arg("--aws");
        }
        for var in [
            "TELEGRAM_BOT_TOKEN",
            "TELEGRAM_WEBHOOK_SECRET",
            "TELEGRAM_API_BASE",
            "SLACK_BOT_TOKEN",
            "SLACK_SIGNING_SECRET",
            "SLACK_API_BASE",
            "ANTHROPIC_API_KEY",
            "ANTHROPIC_BASE_URL",
            "OPENAI_API_KEY",
            "OPENAI_BASE_URL",
            "CLAWGATE_GATEWAY_TOKEN",
            "CLAWGATE_QUEUE_URL",
            "CLAWGATE_STATE_TABLE",
            "CLAWGATE_CONFIG",
        ] {
            command.env_remove(var);
        }
        command.envs(self.env.iter().map(|(k, v)| (*k, v)));
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        let log = self.log.clone();
        // Keep reading for the process's whole life: a closed pipe would break its logging.
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("clawgate is up: WebChat at ") {
                    let _ = tx.send(url.trim_end_matches('/').to_string());
                }
                log.lock().unwrap().push(line);
            }
        });
        self.process = Some(KillOnDrop(child));
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => self.base_url = url,
            Err(_) => panic!(
                "clawgate up did not come up:\n{}",
                self.log.lock().unwrap().join("\n")
            ),
        }
    }

    /// kill -9: the process dies mid-step, as a crashed machine would.
    pub fn kill(&mut self) {
        drop(self.process.take());
    }

    /// Ctrl-C, as a user stops it; returns the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut process = self.process.take()?;
        let child = &mut process.0;
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        for _ in 0..300 {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None // `process` is killed as it drops
    }

    /// Waits for `check` to hold, up to `within`.
    pub async fn wait_for(&self, within: Duration, check: impl Fn(&Fakes) -> bool) -> bool {
        self.fakes.wait_for(within, check).await
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// The gateway token WebChat and hooks need: the configured one, else the one `clawgate up`
    /// made in the state directory.
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.state_dir.join(infra::setup::GATEWAY_TOKEN_FILE))
            .map(|t| t.trim().to_string())
            .or_else(|_| {
                let config = std::fs::read_to_string(&self.config_path).unwrap();
                let at = config.find("token: \"").ok_or(())?;
                let rest = &config[at + 8..];
                Ok::<_, ()>(rest[..rest.find('"').unwrap()].to_string())
            })
            .expect("the stack has a gateway token")
    }

    /// Puts `job` straight on the stack's queue, as a replay or an old gateway would.
    pub async fn enqueue(&self, job: &infra::model::JobMessage) {
        use infra::queue::JobQueueExt;
        match &self.aws {
            Some((queue, _)) => {
                queue.send(job).await.unwrap();
            }
            None => {
                let queue = infra::queue::sqlite::SqliteQueue::open(
                    &self.state_dir.join("queue.db"),
                    infra::setup::SQLITE_QUEUE,
                    Duration::from_secs(5),
                    None,
                )
                .unwrap();
                queue.send(job).await.unwrap();
            }
        }
    }

    /// The stack's queue and store, on whichever backend it runs, opened as the stack's own
    /// `clawgate up` opened them.
    pub async fn backends(&self) -> infra::setup::Backends {
        let (config, _) = infra::config::Config::load(Some(&self.config_path)).unwrap();
        infra::setup::open_backends(&config, &self.state_dir)
            .await
            .unwrap()
    }

    /// The names of the sandbox containers this stack made (none without Docker).
    pub fn containers(&self) -> Vec<String> {
        self.sandbox
            .as_ref()
            .map(|sb| sb.containers())
            .unwrap_or_default()
    }

    /// The stack's SQLite store (a `Backend::Sqlite` stack), to read job records.
    pub fn sqlite_store(&self) -> infra::store::sqlite::SqliteStore {
        assert_eq!(
            self.backend,
            Backend::Sqlite,
            "only a SQLite stack has a store file"
        );
        infra::store::sqlite::SqliteStore::open(&self.state_dir.join("state.db")).unwrap()
    }

    /// Runs `clawgate --config <this stack's> ARGS` to the end; its stdout, after asserting it
    /// succeeded.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_clawgate"))
            .arg("--config")
            .arg(&self.config_path)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "clawgate {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The page's address as `clawgate up` prints it on first run: the token in the fragment.
    pub fn page_url(&self) -> String {
        format!("{}/#token={}", self.base_url, self.token())
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // As a user stops it (Ctrl-C), so a job that just replied is also finished and acked;
        // a killed stack could leave it to come back on a queue another stack reads.
        self.stop();
        if let Some((queue, store)) = self.aws.take() {
            // Best effort, on a runtime of its own: Drop may run inside or outside one.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Runtime::new().unwrap();
                rt.block_on(async {
                    let _ = queue.delete_with_dead_letter_queue().await;
                    let _ = store.delete_table().await;
                });
            })
            .join();
        }
    }
}

/// A second allowed user, whose chat no other test shares (tests on the Terraform-made table
/// share its sessions).
pub const BURST_USER: i64 = 777_001;

/// A private Telegram message from user 12345, as Telegram sends it.
pub fn telegram_dm(update_id: i64, text: &str) -> Value {
    telegram_dm_from(12345, update_id, text)
}

/// A private Telegram message from `user`, as Telegram sends it.
pub fn telegram_dm_from(user: i64, update_id: i64, text: &str) -> Value {
    json!({"update_id": update_id, "message": {"message_id": update_id % 100_000, "from": {"id": user, "is_bot": false, "first_name": "Ada"}, "chat": {"id": user, "first_name": "Ada", "type": "private"}, "date": 1764064800, "text": text}})
}

/// Whether a process whose command line contains `needle` is running (tools on the host).
pub fn process_running(needle: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|p| {
        std::fs::read(p.path().join("cmdline"))
            .map(|c| {
                String::from_utf8_lossy(&c)
                    .replace('\0', " ")
                    .contains(needle)
            })
            .unwrap_or(false)
    })
}

pub fn workspace_file(stack: &Stack, path: &str) -> Option<String> {
    std::fs::read_to_string(Path::new(&stack.workspace).join(path)).ok()
}

/// Every user message: write `notes/todo.txt` with a tool, list `notes` with another, answer
/// with the listing.
pub fn write_then_list() -> Script {
    Arc::new(|_, body: &Value| match last_tool_result(body) {
        None => Reply::tool_use(
            &format!("toolu_{}", ulid::Ulid::new()),
            "write",
            json!({"path": "notes/todo.txt", "content": "buy milk\n"}),
        ),
        Some(result) if result.starts_with("wrote") => Reply::tool_use(
            &format!("toolu_{}", ulid::Ulid::new()),
            "exec",
            json!({"command": "ls notes"}),
        ),
        Some(result) => {
            let report: Value = serde_json::from_str(&result).unwrap_or(json!({"stdout": result}));
            Reply::text(&format!(
                "Files: {}",
                report["stdout"].as_str().unwrap_or("").trim()
            ))
        }
    })
}
