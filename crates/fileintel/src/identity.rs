//! `fileintel apps` and `fileintel keys`: applications and signing keys, in the data directory
//! directly, or through a running server's admin socket when the server holds the directory.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use bytes::Bytes;
use fileintel_auth::keys;
use fileintel_core::Application;
use fileintel_store::{Store, StoreError};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

use crate::StoreArgs;

pub use fileintel_server::application::ADMIN_SOCKET;

#[derive(clap::Subcommand)]
pub enum AppsCommand {
    /// Register an application; prints its client id and secret once, as JSON.
    Create {
        #[command(flatten)]
        store: StoreArgs,
        /// The tenant (directory id or name) the application belongs to and gets tokens for.
        #[arg(long)]
        tenant: String,
        /// A name for people to recognise the application by.
        #[arg(long)]
        name: String,
        /// Application permissions, e.g. File.Read.All (repeat the flag for several).
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
    },
    /// List the registered applications (never their secrets), as JSON.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Delete an application: no token is issued to it from then on.
    Delete {
        #[command(flatten)]
        store: StoreArgs,
        /// The application's tenant.
        #[arg(long)]
        tenant: String,
        /// The application's client id (`apps list` shows it).
        #[arg(long)]
        client_id: String,
    },
    /// Replace an application's secret; prints the new one once.
    RotateSecret {
        #[command(flatten)]
        store: StoreArgs,
        /// The application's tenant.
        #[arg(long)]
        tenant: String,
        /// The application's client id (`apps list` shows it).
        #[arg(long)]
        client_id: String,
    },
}

#[derive(clap::Subcommand)]
pub enum UsersCommand {
    /// Add a user who may sign in with the password grant; with no --password, it is read from
    /// standard input (one line).
    Create {
        #[command(flatten)]
        store: StoreArgs,
        /// The tenant the user belongs to.
        #[arg(long)]
        tenant: String,
        /// The user's sign-in name (user principal name), e.g. alice@contoso.com.
        #[arg(long)]
        upn: String,
        /// Directory roles, e.g. "Security Reader" (repeat the flag for several): one MDE knows,
        /// or one `serve --view-data-role` names.
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Roles besides MDE's that grant View Data, as given to `serve`; only for a store no
        /// server holds (a running server checks against its own).
        #[arg(long = "view-data-role", env = "FILEINTEL_VIEW_DATA_ROLES", value_delimiter = ',')]
        view_data_roles: Vec<String>,
        /// The user's password (better from FILEINTEL_USER_PASSWORD or standard input, which no
        /// process list shows).
        #[arg(long, env = "FILEINTEL_USER_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// List the users (never their password hashes), as JSON.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Delete a user: their delegated tokens stop granting View Data at once.
    Delete {
        #[command(flatten)]
        store: StoreArgs,
        /// The user's tenant.
        #[arg(long)]
        tenant: String,
        /// The user's sign-in name (`users list` shows it).
        #[arg(long)]
        upn: String,
    },
}

#[derive(clap::Subcommand)]
pub enum KeysCommand {
    /// Add a new signing key: new tokens use it, tokens signed by older keys stay valid until they expire.
    Rotate {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List the signing keys' ids and creation times, as JSON.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Where the commands act: the store itself (the embedded one when no server holds it, or
/// PostgreSQL, which every replica shares), or the server that holds the embedded store.
enum Target {
    Store(Arc<dyn Store>),
    Server(PathBuf),
}

impl Target {
    /// The target of a command that adds something: the database when one is named; else the
    /// server answering on the data directory's admin socket (a server on the embedded store, or
    /// a replica whose data directory this is, which holds no store there to open); else the
    /// embedded store itself, created if missing.
    async fn open(args: &StoreArgs) -> anyhow::Result<Target> {
        Target::open_as(args, true).await
    }

    /// The target of a command that reads or changes what exists: a missing data directory is
    /// an error (most likely a mistyped path), and nothing is created.
    async fn existing(args: &StoreArgs) -> anyhow::Result<Target> {
        Target::open_as(args, false).await
    }

    async fn open_as(args: &StoreArgs, create: bool) -> anyhow::Result<Target> {
        if let Some(database) = args.database.connect().await? {
            return Ok(Target::Store(Arc::new(database)));
        }
        let socket = args.data_dir.join(ADMIN_SOCKET);
        // A socket nobody answers on is left by a server that was killed.
        if tokio::net::UnixStream::connect(&socket).await.is_ok() {
            return Ok(Target::Server(socket));
        }
        if !create && !args.data_dir.exists() {
            bail!("the data directory {} does not exist", args.data_dir.display());
        }
        match args.open() {
            Ok(store) => Ok(Target::Store(Arc::new(store))),
            Err(StoreError::Busy(holder)) => {
                let socket = args.data_dir.join(ADMIN_SOCKET);
                if !socket.exists() {
                    bail!("{holder}, and it offers no admin socket at {}", socket.display());
                }
                Ok(Target::Server(socket))
            }
            Err(error) => Err(error).with_context(|| format!("opening the store in {}", args.data_dir.display())),
        }
    }
}

/// One request to the admin socket: (status, JSON body or null).
async fn admin(socket: &Path, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<(u16, Value)> {
    let stream =
        tokio::net::UnixStream::connect(socket).await.with_context(|| format!("connecting to {}", socket.display()))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let bytes = body.map(|body| Bytes::from(body.to_string())).unwrap_or_default();
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, "localhost")
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(bytes))?;
    let response = sender.send_request(request).await.context("talking to the server's admin socket")?;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
}

fn server_said(status: u16, body: &Value) -> anyhow::Error {
    let message = body["error"]["message"].as_str().unwrap_or("no message");
    anyhow::anyhow!("the server refused ({status}): {message}")
}

fn print_json(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn with_secret(application: &Application, secret: String) -> Value {
    let mut shown = fileintel_auth::public_view(application);
    shown["clientSecret"] = Value::String(secret);
    shown
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")
}

pub fn run_apps(command: AppsCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        match command {
            AppsCommand::Create { store, tenant, name, roles } => match Target::open(&store).await? {
                Target::Store(store) => {
                    fileintel_server::auth::check_application_roles(&roles).map_err(anyhow::Error::msg)?;
                    let (application, secret) = fileintel_auth::new_application(&tenant, &name, roles, now());
                    store.put_application(application.clone()).await?;
                    print_json(&with_secret(&application, secret))?;
                }
                Target::Server(socket) => {
                    let body = json!({"tenant": tenant, "name": name, "roles": roles});
                    match admin(&socket, "POST", "/admin/apps", Some(body)).await? {
                        (201, created) => print_json(&created)?,
                        (status, body) => return Err(server_said(status, &body)),
                    }
                }
            },
            AppsCommand::List { store } => match Target::existing(&store).await? {
                Target::Store(store) => {
                    let listed = store.list_applications().await?.iter().map(fileintel_auth::public_view).collect();
                    print_json(&Value::Array(listed))?;
                }
                Target::Server(socket) => match admin(&socket, "GET", "/admin/apps", None).await? {
                    (200, listed) => print_json(&listed)?,
                    (status, body) => return Err(server_said(status, &body)),
                },
            },
            AppsCommand::Delete { store, tenant, client_id } => {
                let deleted = match Target::existing(&store).await? {
                    Target::Store(store) => store.delete_application(&tenant, &client_id).await?,
                    Target::Server(socket) => {
                        match admin(&socket, "DELETE", &format!("/admin/apps/{tenant}/{client_id}"), None).await? {
                            (204, _) => true,
                            (404, _) => false,
                            (status, body) => return Err(server_said(status, &body)),
                        }
                    }
                };
                if !deleted {
                    bail!("no application {client_id} in tenant {tenant}");
                }
                println!("deleted application {client_id} of tenant {tenant}");
            }
            AppsCommand::RotateSecret { store, tenant, client_id } => match Target::existing(&store).await? {
                Target::Store(store) => {
                    let Some(application) = store.get_application(&tenant, &client_id).await? else {
                        bail!("no application {client_id} in tenant {tenant}");
                    };
                    let (application, secret) = fileintel_auth::rotate_secret(application);
                    store.put_application(application.clone()).await?;
                    print_json(&with_secret(&application, secret))?;
                }
                Target::Server(socket) => {
                    let path = format!("/admin/apps/{tenant}/{client_id}/rotate-secret");
                    match admin(&socket, "POST", &path, None).await? {
                        (200, rotated) => print_json(&rotated)?,
                        (status, body) => return Err(server_said(status, &body)),
                    }
                }
            },
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn read_password() -> anyhow::Result<String> {
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprint!("password (it will show as you type; or use --password / FILEINTEL_USER_PASSWORD): ");
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).context("reading the password")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        bail!("the password is empty");
    }
    Ok(password)
}

pub fn run_users(command: UsersCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        match command {
            UsersCommand::Create { store, tenant, upn, roles, view_data_roles, password } => {
                let password = match password {
                    Some(password) => password,
                    None => read_password()?,
                };
                match Target::open(&store).await? {
                    Target::Store(store) => {
                        fileintel_server::auth::check_user_roles(&roles, &view_data_roles)
                            .map_err(anyhow::Error::msg)?;
                        let user = fileintel_auth::new_user(&tenant, &upn, roles, &password, now());
                        store.put_user(user.clone()).await?;
                        print_json(&fileintel_auth::public_user(&user))?;
                    }
                    Target::Server(socket) => {
                        let body = json!({"tenant": tenant, "upn": upn, "roles": roles, "password": password});
                        match admin(&socket, "POST", "/admin/users", Some(body)).await? {
                            (201, created) => print_json(&created)?,
                            (status, body) => return Err(server_said(status, &body)),
                        }
                    }
                }
            }
            UsersCommand::List { store } => match Target::existing(&store).await? {
                Target::Store(store) => {
                    let listed = store.list_users().await?.iter().map(fileintel_auth::public_user).collect();
                    print_json(&Value::Array(listed))?;
                }
                Target::Server(socket) => match admin(&socket, "GET", "/admin/users", None).await? {
                    (200, listed) => print_json(&listed)?,
                    (status, body) => return Err(server_said(status, &body)),
                },
            },
            UsersCommand::Delete { store, tenant, upn } => {
                let deleted = match Target::existing(&store).await? {
                    Target::Store(store) => store.delete_user(&tenant, &upn).await?,
                    Target::Server(socket) => {
                        match admin(&socket, "DELETE", &format!("/admin/users/{tenant}/{upn}"), None).await? {
                            (204, _) => true,
                            (404, _) => false,
                            (status, body) => return Err(server_said(status, &body)),
                        }
                    }
                };
                if !deleted {
                    bail!("no user {upn} in tenant {tenant}");
                }
                println!("deleted user {upn} of tenant {tenant}");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn run_keys(command: KeysCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        match command {
            KeysCommand::Rotate { store } => match Target::open(&store).await? {
                Target::Store(store) => {
                    let key = keys::generate(now());
                    store.add_signing_key(key.clone()).await?;
                    print_json(&json!({"kid": key.kid}))?;
                }
                Target::Server(socket) => match admin(&socket, "POST", "/admin/keys/rotate", None).await? {
                    (201, rotated) => print_json(&rotated)?,
                    (status, body) => return Err(server_said(status, &body)),
                },
            },
            KeysCommand::List { store } => match Target::existing(&store).await? {
                Target::Store(store) => {
                    let listed: Vec<Value> = store
                        .signing_keys()
                        .await?
                        .iter()
                        .map(|key| json!({"kid": key.kid, "created": fileintel_core::Timestamp::from_unix_seconds(key.created).to_string()}))
                        .collect();
                    print_json(&Value::Array(listed))?;
                }
                Target::Server(socket) => match admin(&socket, "GET", "/admin/keys", None).await? {
                    (200, listed) => print_json(&listed)?,
                    (status, body) => return Err(server_said(status, &body)),
                },
            },
        }
        Ok(ExitCode::SUCCESS)
    })
}
