//! `fileintel apps` and `fileintel keys`: applications and signing keys in the data directory.

use std::process::ExitCode;

use anyhow::{Context, bail};
use fileintel_auth::{keys, secrets};
use fileintel_core::{Application, SigningKey};
use fileintel_store::Store;

use crate::StoreArgs;

#[derive(clap::Subcommand)]
pub enum AppsCommand {
    /// Register an application; prints its client id and secret once, as JSON.
    Create {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        tenant: String,
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
    /// Delete an application: its tokens stop being issued at once.
    Delete {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        client_id: String,
    },
    /// Replace an application's secret; prints the new one once.
    RotateSecret {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        client_id: String,
    },
}

#[derive(clap::Subcommand)]
pub enum KeysCommand {
    /// Add a new signing key: new tokens use it, tokens signed by older keys stay valid until they expire.
    Rotate {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List the signing keys' ids and creation times.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")
}

/// The signing keys, generating the first one when there is none.
pub async fn signing_keys(store: &dyn Store) -> anyhow::Result<Vec<SigningKey>> {
    let mut found = store.signing_keys().await.context("reading the signing keys")?;
    if found.is_empty() {
        let key = keys::generate(now());
        store.add_signing_key(key.clone()).await.context("storing a new signing key")?;
        tracing::info!(kid = %key.kid, "generated the first token signing key");
        found.push(key);
    }
    Ok(found)
}

/// Creates the demo application, or gives it a fresh secret; returns the secret.
pub async fn refresh_demo_application(store: &dyn Store, tenant: &str, client_id: &str) -> anyhow::Result<String> {
    let secret = secrets::generate();
    let application = Application {
        tenant: tenant.into(),
        client_id: client_id.into(),
        object_id: "00000000-0000-0000-0000-0000000000de".into(),
        name: "fileintel demo".into(),
        roles: vec!["File.Read.All".into(), "File.ReadWrite.All".into()],
        secret_hash: secrets::hash(&secret),
        created: now(),
    };
    store.put_application(application).await.context("registering the demo application")?;
    Ok(secret)
}

fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn public(application: &Application) -> serde_json::Value {
    serde_json::json!({
        "tenantId": application.tenant,
        "clientId": application.client_id,
        "objectId": application.object_id,
        "name": application.name,
        "roles": application.roles,
        "created": fileintel_core::Timestamp::from_unix_seconds(application.created).to_string(),
    })
}

pub fn run_apps(command: AppsCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        match command {
            AppsCommand::Create { store, tenant, name, roles } => {
                let store = crate::ingest::open_store(&store)?;
                let secret = secrets::generate();
                let application = Application {
                    tenant,
                    client_id: uuid_v4(),
                    object_id: uuid_v4(),
                    name,
                    roles,
                    secret_hash: secrets::hash(&secret),
                    created: now(),
                };
                store.put_application(application.clone()).await?;
                let mut shown = public(&application);
                shown["clientSecret"] = serde_json::Value::String(secret);
                print_json(&shown)?;
            }
            AppsCommand::List { store } => {
                let store = crate::ingest::open_store(&store)?;
                let listed: Vec<serde_json::Value> = store.list_applications().await?.iter().map(public).collect();
                print_json(&serde_json::Value::Array(listed))?;
            }
            AppsCommand::Delete { store, tenant, client_id } => {
                let store = crate::ingest::open_store(&store)?;
                if !store.delete_application(&tenant, &client_id).await? {
                    bail!("no application {client_id} in tenant {tenant}");
                }
                println!("deleted application {client_id} of tenant {tenant}");
            }
            AppsCommand::RotateSecret { store, tenant, client_id } => {
                let store = crate::ingest::open_store(&store)?;
                let Some(mut application) = store.get_application(&tenant, &client_id).await? else {
                    bail!("no application {client_id} in tenant {tenant}");
                };
                let secret = secrets::generate();
                application.secret_hash = secrets::hash(&secret);
                store.put_application(application.clone()).await?;
                let mut shown = public(&application);
                shown["clientSecret"] = serde_json::Value::String(secret);
                print_json(&shown)?;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn run_keys(command: KeysCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        match command {
            KeysCommand::Rotate { store } => {
                let store = crate::ingest::open_store(&store)?;
                let key = keys::generate(now());
                store.add_signing_key(key.clone()).await?;
                println!("new signing key {}; a running server picks it up when restarted", key.kid);
            }
            KeysCommand::List { store } => {
                let store = crate::ingest::open_store(&store)?;
                for key in store.signing_keys().await? {
                    println!("{} {}", key.kid, fileintel_core::Timestamp::from_unix_seconds(key.created));
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn uuid_v4() -> String {
    uuid::Uuid::new_v4().to_string()
}
