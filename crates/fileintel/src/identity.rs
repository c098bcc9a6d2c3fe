//! `fileintel apps`, `users` and `keys`: applications, users and signing keys, through the admin
//! API (in this process over the store, or a running server's on its admin socket).

use std::process::ExitCode;

use anyhow::{Context, bail};
use fileintel_server::admin::Admin;
use fileintel_server::backend::StoreSettings;
use serde_json::Value;

use crate::StoreArgs;

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

/// The admin API the commands go through: in this process over the store (the embedded one
/// when no server holds it, or PostgreSQL, which every replica shares), or the running server's
/// on the data directory's socket. Commands that add something create a missing data directory;
/// those that read or change what exists refuse one (most likely a mistyped path).
async fn admin(store: &StoreArgs, create: bool, view_data_roles: Vec<String>) -> anyhow::Result<Admin> {
    Ok(Admin::open(&StoreSettings { create, ..store.settings() }, view_data_roles).await?)
}

fn print_json(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")
}

pub fn run_apps(command: AppsCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        match command {
            AppsCommand::Create { store, tenant, name, roles } => {
                print_json(&admin(&store, true, Vec::new()).await?.create_app(&tenant, &name, &roles).await?)?
            }
            AppsCommand::List { store } => print_json(&admin(&store, false, Vec::new()).await?.list_apps().await?)?,
            AppsCommand::Delete { store, tenant, client_id } => {
                admin(&store, false, Vec::new()).await?.delete_app(&tenant, &client_id).await?;
                println!("deleted application {client_id} of tenant {tenant}");
            }
            AppsCommand::RotateSecret { store, tenant, client_id } => {
                print_json(&admin(&store, false, Vec::new()).await?.rotate_app_secret(&tenant, &client_id).await?)?
            }
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
                let admin = admin(&store, true, view_data_roles).await?;
                print_json(&admin.create_user(&tenant, &upn, &roles, &password).await?)?;
            }
            UsersCommand::List { store } => print_json(&admin(&store, false, Vec::new()).await?.list_users().await?)?,
            UsersCommand::Delete { store, tenant, upn } => {
                admin(&store, false, Vec::new()).await?.delete_user(&tenant, &upn).await?;
                println!("deleted user {upn} of tenant {tenant}");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn run_keys(command: KeysCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        match command {
            KeysCommand::Rotate { store } => print_json(&admin(&store, true, Vec::new()).await?.rotate_key().await?)?,
            KeysCommand::List { store } => print_json(&admin(&store, false, Vec::new()).await?.list_keys().await?)?,
        }
        Ok(ExitCode::SUCCESS)
    })
}
