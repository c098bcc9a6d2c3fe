//! Applications, users and signing keys: small tables written by administrators.

use deadpool_postgres::{Client, Transaction};
use fileintel_core::{Application, SigningKey, User};
use tokio_postgres::Row;

use crate::error::Failure;

/// The advisory lock key user writers hold ("fiusers" in ASCII): a user's row and its object id
/// entry change together, as fjall changes them under its single writer.
const USER_LOCK: i64 = 0x0066_6975_7365_7273;

const APPLICATION_COLUMNS: &str = "tenant, client_id, object_id, name, roles, secret_hash, created";

fn application_from_row(row: &Row) -> Result<Application, Failure> {
    Ok(Application {
        tenant: row.try_get(0)?,
        client_id: row.try_get(1)?,
        object_id: row.try_get(2)?,
        name: row.try_get(3)?,
        roles: row.try_get(4)?,
        secret_hash: row.try_get(5)?,
        created: row.try_get(6)?,
    })
}

/// Moves the identity generation on, in the transaction of the write that changed an identity.
async fn identity_changed(tx: &Transaction<'_>) -> Result<(), Failure> {
    let statement = tx.prepare_cached("UPDATE identity_generation SET generation = generation + 1").await?;
    tx.execute(&statement, &[]).await?;
    Ok(())
}

pub(crate) async fn identity_generation(client: &Client) -> Result<u64, Failure> {
    let statement = client.prepare_cached("SELECT generation FROM identity_generation").await?;
    let generation: i64 = client.query_one(&statement, &[]).await?.try_get(0)?;
    Ok(generation as u64)
}

/// `Store::put_application` as one attempt of its transaction.
pub(crate) async fn put_application(client: &Transaction<'_>, application: &Application) -> Result<(), Failure> {
    let statement = client
        .prepare_cached(&format!(
            "INSERT INTO applications ({APPLICATION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (tenant, client_id) DO UPDATE SET
                object_id = excluded.object_id, name = excluded.name, roles = excluded.roles,
                secret_hash = excluded.secret_hash, created = excluded.created"
        ))
        .await?;
    client
        .execute(
            &statement,
            &[
                &application.tenant,
                &application.client_id,
                &application.object_id,
                &application.name,
                &application.roles,
                &application.secret_hash,
                &application.created,
            ],
        )
        .await?;
    identity_changed(client).await
}

pub(crate) async fn get_application(
    client: &Client,
    tenant: &str,
    client_id: &str,
) -> Result<Option<Application>, Failure> {
    let statement = client
        .prepare_cached(&format!("SELECT {APPLICATION_COLUMNS} FROM applications WHERE tenant = $1 AND client_id = $2"))
        .await?;
    client.query_opt(&statement, &[&tenant, &client_id]).await?.as_ref().map(application_from_row).transpose()
}

pub(crate) async fn list_applications(client: &Client) -> Result<Vec<Application>, Failure> {
    let statement = client
        .prepare_cached(&format!("SELECT {APPLICATION_COLUMNS} FROM applications ORDER BY tenant, client_id"))
        .await?;
    client.query(&statement, &[]).await?.iter().map(application_from_row).collect()
}

/// `Store::delete_application` as one attempt of its transaction.
pub(crate) async fn delete_application(tx: &Transaction<'_>, tenant: &str, client_id: &str) -> Result<bool, Failure> {
    let statement = tx.prepare_cached("DELETE FROM applications WHERE tenant = $1 AND client_id = $2").await?;
    let deleted = tx.execute(&statement, &[&tenant, &client_id]).await? > 0;
    if deleted {
        identity_changed(tx).await?;
    }
    Ok(deleted)
}

pub(crate) async fn signing_keys(client: &Client) -> Result<Vec<SigningKey>, Failure> {
    let statement = client.prepare_cached("SELECT kid, pkcs8, created FROM signing_keys ORDER BY seq").await?;
    let mut keys = Vec::new();
    for row in client.query(&statement, &[]).await? {
        keys.push(SigningKey { kid: row.try_get(0)?, pkcs8: row.try_get(1)?, created: row.try_get(2)? });
    }
    Ok(keys)
}

/// Keys are kept in the order they were added, whatever their clocks said: the sequence
/// decides, so the last is the newest even if a clock stepped back between two rotations.
pub(crate) async fn add_signing_key(client: &Client, key: &SigningKey) -> Result<(), Failure> {
    let statement = client.prepare_cached("INSERT INTO signing_keys (kid, pkcs8, created) VALUES ($1, $2, $3)").await?;
    client.execute(&statement, &[&key.kid, &key.pkcs8, &key.created]).await?;
    Ok(())
}

const USER_COLUMNS: &str = "u.tenant, u.upn, u.object_id, u.roles, u.password_hash, u.created";

fn user_from_row(row: &Row) -> Result<User, Failure> {
    Ok(User {
        tenant: row.try_get(0)?,
        upn: row.try_get(1)?,
        object_id: row.try_get(2)?,
        roles: row.try_get(3)?,
        password_hash: row.try_get(4)?,
        created: row.try_get(5)?,
    })
}

/// The key a sign-in name is found under: lower-cased as fjall does it (Unicode, in Rust, not
/// by the database's locale).
fn upn_key(upn: &str) -> String {
    upn.to_lowercase()
}

async fn lock_users(tx: &Transaction<'_>) -> Result<(), Failure> {
    let statement = tx.prepare_cached("SELECT pg_advisory_xact_lock($1)").await?;
    tx.execute(&statement, &[&USER_LOCK]).await?;
    Ok(())
}

async fn user_in(tx: &Transaction<'_>, tenant: &str, upn: &str) -> Result<Option<User>, Failure> {
    let statement = tx
        .prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users AS u WHERE u.tenant = $1 AND u.upn_key = $2"))
        .await?;
    tx.query_opt(&statement, &[&tenant, &upn_key(upn)]).await?.as_ref().map(user_from_row).transpose()
}

/// `Store::put_user` as one attempt of its transaction. As in fjall, the object id now points
/// at this user, and the one a replaced user had is retired.
pub(crate) async fn put_user(tx: &Transaction<'_>, user: &User) -> Result<(), Failure> {
    lock_users(tx).await?;
    let key = upn_key(&user.upn);
    if let Some(previous) = user_in(tx, &user.tenant, &user.upn).await?
        && previous.object_id != user.object_id
    {
        let statement = tx.prepare_cached("DELETE FROM user_object_ids WHERE tenant = $1 AND object_id = $2").await?;
        tx.execute(&statement, &[&user.tenant, &previous.object_id]).await?;
    }
    let statement = tx
        .prepare_cached(
            "INSERT INTO user_object_ids (tenant, object_id, upn_key) VALUES ($1, $2, $3)
             ON CONFLICT (tenant, object_id) DO UPDATE SET upn_key = excluded.upn_key",
        )
        .await?;
    tx.execute(&statement, &[&user.tenant, &user.object_id, &key]).await?;
    let statement = tx
        .prepare_cached(
            "INSERT INTO users (tenant, upn_key, upn, object_id, roles, password_hash, created)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (tenant, upn_key) DO UPDATE SET
                upn = excluded.upn, object_id = excluded.object_id, roles = excluded.roles,
                password_hash = excluded.password_hash, created = excluded.created",
        )
        .await?;
    tx.execute(
        &statement,
        &[&user.tenant, &key, &user.upn, &user.object_id, &user.roles, &user.password_hash, &user.created],
    )
    .await?;
    identity_changed(tx).await
}

pub(crate) async fn get_user(client: &Client, tenant: &str, upn: &str) -> Result<Option<User>, Failure> {
    let statement = client
        .prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users AS u WHERE u.tenant = $1 AND u.upn_key = $2"))
        .await?;
    client.query_opt(&statement, &[&tenant, &upn_key(upn)]).await?.as_ref().map(user_from_row).transpose()
}

pub(crate) async fn get_user_by_object_id(
    client: &Client,
    tenant: &str,
    object_id: &str,
) -> Result<Option<User>, Failure> {
    let statement = client
        .prepare_cached(&format!(
            "SELECT {USER_COLUMNS}
             FROM user_object_ids AS o JOIN users AS u ON u.tenant = o.tenant AND u.upn_key = o.upn_key
             WHERE o.tenant = $1 AND o.object_id = $2"
        ))
        .await?;
    client.query_opt(&statement, &[&tenant, &object_id]).await?.as_ref().map(user_from_row).transpose()
}

pub(crate) async fn list_users(client: &Client) -> Result<Vec<User>, Failure> {
    let statement =
        client.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users AS u ORDER BY u.tenant, u.upn_key")).await?;
    client.query(&statement, &[]).await?.iter().map(user_from_row).collect()
}

/// `Store::delete_user` as one attempt of its transaction: the user and their object id go.
pub(crate) async fn delete_user(tx: &Transaction<'_>, tenant: &str, upn: &str) -> Result<bool, Failure> {
    lock_users(tx).await?;
    let Some(user) = user_in(tx, tenant, upn).await? else { return Ok(false) };
    let statement = tx.prepare_cached("DELETE FROM users WHERE tenant = $1 AND upn_key = $2").await?;
    tx.execute(&statement, &[&tenant, &upn_key(upn)]).await?;
    let statement = tx.prepare_cached("DELETE FROM user_object_ids WHERE tenant = $1 AND object_id = $2").await?;
    tx.execute(&statement, &[&tenant, &user.object_id]).await?;
    identity_changed(tx).await?;
    Ok(true)
}
