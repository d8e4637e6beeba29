//! Users, ACLs and quotas (the `eddy.v1.Security` service), and who the brokers take this client
//! for.

use eddy_proto::v1::{self, security_client::SecurityClient};

use crate::client::Client;
use crate::credentials::Transport;
use crate::error::{ClientError, ClientResult};

/// The one SCRAM mechanism.
const MECHANISM: &str = "SCRAM-SHA-256";

impl Client {
    fn security_stub(&self, address: &str) -> ClientResult<SecurityClient<Transport>> {
        Ok(SecurityClient::new(self.transport(address)?))
    }

    async fn any_broker_security<T, F, Fut>(&self, mut call: F) -> ClientResult<T>
    where
        F: FnMut(SecurityClient<Transport>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.any_address(|address| {
            let call = self.security_stub(address).map(&mut call);
            async move { call?.await.map_err(|s| ClientError::from_status(&s)).map(tonic::Response::into_inner) }
        })
        .await
    }

    /// Creates user `name` with `password`, or replaces its password. The password is salted and
    /// hashed here (SCRAM-SHA-256 with `iterations` rounds of PBKDF2); only that reaches the
    /// brokers.
    pub async fn upsert_user(&self, name: &str, password: &str, iterations: u32) -> ClientResult<()> {
        self.upsert_user_salted(name, password, eddy_auth::ScramCredential::new_salt(), iterations).await
    }

    /// [`Client::upsert_user`] with a salt of the caller's (a deterministic simulation's; anything
    /// else should let the client draw one).
    pub async fn upsert_user_salted(
        &self,
        name: &str,
        password: &str,
        salt: Vec<u8>,
        iterations: u32,
    ) -> ClientResult<()> {
        let salted = eddy_auth::salted_password(password, &salt, iterations);
        let request = v1::UpsertUserRequest {
            name: name.to_string(),
            mechanism: MECHANISM.into(),
            iterations,
            salt: salt.into(),
            salted_password: salted.to_vec().into(),
        };
        self.any_broker_security(|mut c| {
            let r = request.clone();
            async move { c.upsert_user(r).await }
        })
        .await
        .map(|_| ())
    }

    /// Deletes user `name` (UNKNOWN_USER when there is none).
    pub async fn delete_user(&self, name: &str) -> ClientResult<()> {
        let request = v1::DeleteUserRequest { name: name.to_string() };
        self.any_broker_security(|mut c| {
            let r = request.clone();
            async move { c.delete_user(r).await }
        })
        .await
        .map(|_| ())
    }

    /// The users (names and mechanisms; never credentials).
    pub async fn list_users(&self) -> ClientResult<Vec<v1::UserDescription>> {
        self.any_broker_security(|mut c| async move { c.list_users(v1::ListUsersRequest {}).await })
            .await
            .map(|r| r.users)
    }

    /// Adds ACLs.
    pub async fn create_acls(&self, acls: Vec<v1::Acl>) -> ClientResult<()> {
        let request = v1::CreateAclsRequest { acls };
        self.any_broker_security(|mut c| {
            let r = request.clone();
            async move { c.create_acls(r).await }
        })
        .await
        .map(|_| ())
    }

    /// Removes the ACLs `filter` matches; returns them.
    pub async fn delete_acls(&self, filter: v1::AclFilter) -> ClientResult<Vec<v1::Acl>> {
        let request = v1::DeleteAclsRequest { filter: Some(filter) };
        self.any_broker_security(|mut c| {
            let r = request.clone();
            async move { c.delete_acls(r).await }
        })
        .await
        .map(|r| r.deleted)
    }

    /// The ACLs `filter` matches.
    pub async fn list_acls(&self, filter: v1::AclFilter) -> ClientResult<Vec<v1::Acl>> {
        let request = v1::ListAclsRequest { filter: Some(filter) };
        self.any_broker_security(|mut c| {
            let r = request.clone();
            async move { c.list_acls(r).await }
        })
        .await
        .map(|r| r.acls)
    }

    /// Who the brokers take this client for.
    pub async fn who_am_i(&self) -> ClientResult<v1::WhoAmIResponse> {
        self.any_broker_security(|mut c| async move { c.who_am_i(v1::WhoAmIRequest {}).await }).await
    }

    /// Sets the quota of `principal` (`User:<name>`), or the default quota with `None`,
    /// cluster-wide; `limits` with no rate set removes it.
    pub async fn set_quota(&self, principal: Option<&str>, limits: v1::QuotaLimits) -> ClientResult<()> {
        let request = v1::SetQuotaRequest {
            principal: principal.unwrap_or_default().to_string(),
            default: principal.is_none(),
            limits: Some(limits),
        };
        self.any_broker_security(|mut c| {
            let r = request.clone();
            async move { c.set_quota(r).await }
        })
        .await
        .map(|_| ())
    }

    /// The quotas set cluster-wide (the default one has an empty principal).
    pub async fn list_quotas(&self) -> ClientResult<Vec<v1::Quota>> {
        self.any_broker_security(|mut c| async move { c.list_quotas(v1::ListQuotasRequest {}).await })
            .await
            .map(|r| r.quotas)
    }
}
