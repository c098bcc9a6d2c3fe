//! Applications, users and token signing keys.

use fileintel_core::{Application, SigningKey, User};
use fjall::PersistMode;

use super::Inner;
use super::codec::{decode, encode, u64_value};
use super::keys::{application_key, check_keyable, keyable};
use crate::StoreError;

impl Inner {
    /// Moves [`Store::identity_generation`](crate::Store::identity_generation) on, after an
    /// identity write has committed.
    fn identity_changed(&self) {
        self.identity_generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    pub(super) fn put_application(&self, application: Application) -> Result<(), StoreError> {
        check_keyable(&[("tenant", &application.tenant), ("clientId", &application.client_id)])?;
        let key = application_key(&application.tenant, &application.client_id);
        let mut write = self.db.batch().durability(Some(PersistMode::SyncAll));
        write.insert(&self.keyspaces.applications, key, encode(&application));
        write.commit()?;
        self.identity_changed();
        Ok(())
    }

    pub(super) fn get_application(&self, tenant: &str, client_id: &str) -> Result<Option<Application>, StoreError> {
        if !keyable(&[tenant, client_id]) {
            return Ok(None);
        }
        let bytes = self.keyspaces.applications.get(application_key(tenant, client_id))?;
        bytes.map(|bytes| decode("application", &bytes)).transpose()
    }

    pub(super) fn list_applications(&self) -> Result<Vec<Application>, StoreError> {
        let mut applications = Vec::new();
        for item in self.keyspaces.applications.iter() {
            applications.push(decode("application", &item.value()?)?);
        }
        Ok(applications)
    }

    pub(super) fn delete_application(&self, tenant: &str, client_id: &str) -> Result<bool, StoreError> {
        if !keyable(&[tenant, client_id]) {
            return Ok(false);
        }
        let key = application_key(tenant, client_id);
        if self.keyspaces.applications.get(&key)?.is_none() {
            return Ok(false);
        }
        let mut write = self.db.batch().durability(Some(PersistMode::SyncAll));
        write.remove(&self.keyspaces.applications, key);
        write.commit()?;
        self.identity_changed();
        Ok(true)
    }

    pub(super) fn signing_keys(&self) -> Result<Vec<SigningKey>, StoreError> {
        let mut keys = Vec::new();
        for item in self.keyspaces.signing_keys.iter() {
            keys.push(decode("signing key", &item.value()?)?);
        }
        Ok(keys)
    }

    pub(super) fn add_signing_key(&self, key: SigningKey) -> Result<(), StoreError> {
        // Keys are kept in the order they were added, whatever the clock says: the last is the
        // newest, even if the clock stepped back between two rotations.
        let last = match self.keyspaces.signing_keys.last_key_value() {
            Some(item) => u64_value("signing key id", &item.key()?)?,
            None => 0,
        };
        let id = (last + 1).to_be_bytes().to_vec();
        let mut write = self.db.batch().durability(Some(PersistMode::SyncAll));
        write.insert(&self.keyspaces.signing_keys, id, encode(&key));
        Ok(write.commit()?)
    }

    pub(super) fn put_user(&self, user: User) -> Result<(), StoreError> {
        check_keyable(&[("tenant", &user.tenant), ("upn", &user.upn), ("objectId", &user.object_id)])?;
        let upn = user.upn.to_lowercase();
        let mut write = self.db.batch().durability(Some(PersistMode::SyncAll));
        if let Some(previous) = self.get_user(&user.tenant, &upn)?
            && previous.object_id != user.object_id
        {
            write.remove(&self.keyspaces.users_by_oid, application_key(&user.tenant, &previous.object_id));
        }
        write.insert(
            &self.keyspaces.users_by_oid,
            application_key(&user.tenant, &user.object_id),
            upn.clone().into_bytes(),
        );
        write.insert(&self.keyspaces.users, application_key(&user.tenant, &upn), encode(&user));
        write.commit()?;
        self.identity_changed();
        Ok(())
    }

    pub(super) fn get_user(&self, tenant: &str, upn: &str) -> Result<Option<User>, StoreError> {
        if !keyable(&[tenant, upn]) {
            return Ok(None);
        }
        let bytes = self.keyspaces.users.get(application_key(tenant, &upn.to_lowercase()))?;
        bytes.map(|bytes| decode("user", &bytes)).transpose()
    }

    pub(super) fn get_user_by_object_id(&self, tenant: &str, object_id: &str) -> Result<Option<User>, StoreError> {
        if !keyable(&[tenant, object_id]) {
            return Ok(None);
        }
        match self.keyspaces.users_by_oid.get(application_key(tenant, object_id))? {
            Some(upn) => self.get_user(tenant, &String::from_utf8_lossy(&upn)),
            None => Ok(None),
        }
    }

    pub(super) fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let mut users = Vec::new();
        for item in self.keyspaces.users.iter() {
            users.push(decode("user", &item.value()?)?);
        }
        Ok(users)
    }

    pub(super) fn delete_user(&self, tenant: &str, upn: &str) -> Result<bool, StoreError> {
        let Some(user) = self.get_user(tenant, upn)? else { return Ok(false) };
        let mut write = self.db.batch().durability(Some(PersistMode::SyncAll));
        write.remove(&self.keyspaces.users, application_key(tenant, &user.upn.to_lowercase()));
        write.remove(&self.keyspaces.users_by_oid, application_key(tenant, &user.object_id));
        write.commit()?;
        self.identity_changed();
        Ok(true)
    }
}
