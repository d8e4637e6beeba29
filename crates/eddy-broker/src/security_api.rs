//! The `eddy.v1.Security` service: users and ACLs, changed through the controller and read from
//! this broker's metadata; and WhoAmI.

use eddy_auth::{Operation, Principal, QuotaEntity, QuotaLimits, Resource, ScramCredential};
use eddy_controller::{ControllerReply, ControllerRequest, SecurityCommand};
use eddy_proto::v1::{self, security_server::Security};
use tonic::{Request, Response, Status};

use crate::api::EddyApi;
use crate::convert;
use crate::error::BrokerError;

/// The one SCRAM mechanism.
const MECHANISM: &str = "SCRAM-SHA-256";
/// Most ACLs one CreateAcls request adds.
const ACLS_PER_REQUEST_MAX: usize = 1_000;

/// The security administration service of a broker.
#[derive(Debug, Clone)]
pub struct SecurityApi {
    api: EddyApi,
}

impl SecurityApi {
    pub fn new(api: EddyApi) -> Self {
        Self { api }
    }

    async fn change(&self, command: SecurityCommand) -> Result<Vec<eddy_auth::AclBinding>, BrokerError> {
        match self.api.controller().call(&ControllerRequest::Security(command)).await? {
            ControllerReply::AclsDeleted(deleted) => Ok(deleted),
            other => Err(BrokerError::Internal(format!("unexpected controller reply {other:?}"))),
        }
    }
}

fn credential_from_wire(request: &v1::UpsertUserRequest) -> Result<ScramCredential, BrokerError> {
    let invalid = |reason: String| BrokerError::InvalidRequest(reason);
    eddy_auth::check_name(&request.name).map_err(|e| invalid(e.to_string()))?;
    if request.mechanism != MECHANISM {
        return Err(invalid(format!("mechanism {:?} is not supported; use {MECHANISM}", request.mechanism)));
    }
    if !(eddy_auth::SCRAM_ITERATIONS_MIN..=eddy_auth::SCRAM_ITERATIONS_MAX).contains(&request.iterations) {
        return Err(invalid(format!(
            "iterations must be between {} and {}",
            eddy_auth::SCRAM_ITERATIONS_MIN,
            eddy_auth::SCRAM_ITERATIONS_MAX
        )));
    }
    if request.salt.is_empty() || request.salt.len() > eddy_auth::SCRAM_SALT_MAX_BYTES {
        return Err(invalid(format!("the salt must be 1 to {} bytes", eddy_auth::SCRAM_SALT_MAX_BYTES)));
    }
    let salted: [u8; 32] = request
        .salted_password
        .as_ref()
        .try_into()
        .map_err(|_| invalid("the salted password must be 32 bytes (PBKDF2-HMAC-SHA-256)".into()))?;
    Ok(ScramCredential::from_salted_password(request.salt.to_vec(), request.iterations, &salted))
}

/// Whom a SetQuota request's quota is for.
fn quota_entity_from_wire(request: &v1::SetQuotaRequest) -> Result<QuotaEntity, BrokerError> {
    let invalid = |reason: String| BrokerError::InvalidRequest(reason);
    match (request.default, request.principal.as_str()) {
        (true, "") => Ok(QuotaEntity::Default),
        (true, _) => Err(invalid("give a principal or the default quota, not both".into())),
        (false, "") => Err(invalid("a quota is for a principal (User:<name>) or the default".into())),
        (false, text) => {
            let principal = Principal::parse(text).map_err(|e| invalid(e.to_string()))?;
            if principal.is_any() {
                return Err(invalid("User:* is not one principal: set the default quota instead".into()));
            }
            Ok(QuotaEntity::Principal(principal))
        }
    }
}

fn quota_limits_from_wire(limits: Option<v1::QuotaLimits>) -> Result<QuotaLimits, BrokerError> {
    let limits = limits.unwrap_or_default();
    let limits = QuotaLimits {
        produce_bytes_per_second: limits.produce_bytes_per_second,
        fetch_bytes_per_second: limits.fetch_bytes_per_second,
        requests_per_second: limits.requests_per_second,
    };
    limits.check().map_err(BrokerError::InvalidRequest)?;
    Ok(limits)
}

fn quota_to_wire(entity: &QuotaEntity, limits: &QuotaLimits) -> v1::Quota {
    v1::Quota {
        principal: match entity {
            QuotaEntity::Default => String::new(),
            QuotaEntity::Principal(principal) => principal.to_string(),
        },
        limits: Some(v1::QuotaLimits {
            produce_bytes_per_second: limits.produce_bytes_per_second,
            fetch_bytes_per_second: limits.fetch_bytes_per_second,
            requests_per_second: limits.requests_per_second,
        }),
    }
}

#[tonic::async_trait]
impl Security for SecurityApi {
    async fn upsert_user(
        &self,
        request: Request<v1::UpsertUserRequest>,
    ) -> Result<Response<v1::UpsertUserResponse>, Status> {
        let caller = self.api.permit(&request, Resource::cluster(), Operation::Alter)?;
        self.api.admit(&caller).await;
        let request = request.into_inner();
        let credential = credential_from_wire(&request)?;
        let stored_key = credential.stored_key;
        let name = request.name;
        self.change(SecurityCommand::UpsertUser { name: name.clone(), credential }).await?;
        tracing::info!(target: "eddy::audit", by = %caller.principal, user = %name, "user created or its credential replaced");
        self.api
            .await_metadata(|view| view.metadata.security.users.get(&name).is_some_and(|c| c.stored_key == stored_key))
            .await;
        Ok(Response::new(v1::UpsertUserResponse {}))
    }

    async fn delete_user(
        &self,
        request: Request<v1::DeleteUserRequest>,
    ) -> Result<Response<v1::DeleteUserResponse>, Status> {
        let caller = self.api.permit(&request, Resource::cluster(), Operation::Alter)?;
        self.api.admit(&caller).await;
        let name = request.into_inner().name;
        self.change(SecurityCommand::DeleteUser { name: name.clone() }).await?;
        tracing::info!(target: "eddy::audit", by = %caller.principal, user = %name, "user deleted");
        self.api.await_metadata(|view| !view.metadata.security.users.contains_key(&name)).await;
        Ok(Response::new(v1::DeleteUserResponse {}))
    }

    async fn list_users(
        &self,
        request: Request<v1::ListUsersRequest>,
    ) -> Result<Response<v1::ListUsersResponse>, Status> {
        let caller = self.api.permit(&request, Resource::cluster(), Operation::Describe)?;
        self.api.admit(&caller).await;
        let view = self.api.cluster().current();
        let users = view
            .metadata
            .security
            .users
            .iter()
            .map(|(name, c)| v1::UserDescription {
                name: name.clone(),
                mechanism: MECHANISM.into(),
                iterations: c.iterations,
            })
            .collect();
        Ok(Response::new(v1::ListUsersResponse { users }))
    }

    async fn create_acls(
        &self,
        request: Request<v1::CreateAclsRequest>,
    ) -> Result<Response<v1::CreateAclsResponse>, Status> {
        let caller = self.api.permit(&request, Resource::cluster(), Operation::Alter)?;
        self.api.admit(&caller).await;
        let acls = request.into_inner().acls;
        if acls.len() > ACLS_PER_REQUEST_MAX {
            return Err(BrokerError::InvalidRequest(format!("at most {ACLS_PER_REQUEST_MAX} ACLs per request")).into());
        }
        let acls = acls.into_iter().map(convert::acl_from_wire).collect::<Result<Vec<_>, _>>()?;
        self.change(SecurityCommand::CreateAcls { acls: acls.clone() }).await?;
        for acl in &acls {
            tracing::info!(target: "eddy::audit", by = %caller.principal, acl = ?acl, "ACL added");
        }
        self.api.await_metadata(|view| acls.iter().all(|a| view.metadata.security.acls.contains(a))).await;
        Ok(Response::new(v1::CreateAclsResponse {}))
    }

    async fn delete_acls(
        &self,
        request: Request<v1::DeleteAclsRequest>,
    ) -> Result<Response<v1::DeleteAclsResponse>, Status> {
        let caller = self.api.permit(&request, Resource::cluster(), Operation::Alter)?;
        self.api.admit(&caller).await;
        let filter = convert::acl_filter_from_wire(request.into_inner().filter.unwrap_or_default())?;
        let deleted = self.change(SecurityCommand::DeleteAcls { filter }).await?;
        for acl in &deleted {
            tracing::info!(target: "eddy::audit", by = %caller.principal, acl = ?acl, "ACL removed");
        }
        self.api.await_metadata(|view| deleted.iter().all(|a| !view.metadata.security.acls.contains(a))).await;
        Ok(Response::new(v1::DeleteAclsResponse { deleted: deleted.iter().map(convert::acl_to_wire).collect() }))
    }

    async fn list_acls(&self, request: Request<v1::ListAclsRequest>) -> Result<Response<v1::ListAclsResponse>, Status> {
        let caller = self.api.permit(&request, Resource::cluster(), Operation::Describe)?;
        self.api.admit(&caller).await;
        let filter = convert::acl_filter_from_wire(request.into_inner().filter.unwrap_or_default())?;
        let view = self.api.cluster().current();
        let acls = view.metadata.security.acls.iter().filter(|a| filter.matches(a)).map(convert::acl_to_wire).collect();
        Ok(Response::new(v1::ListAclsResponse { acls }))
    }

    async fn who_am_i(&self, request: Request<v1::WhoAmIRequest>) -> Result<Response<v1::WhoAmIResponse>, Status> {
        let caller = self.api.caller(&request)?;
        self.api.admit(&caller).await;
        Ok(Response::new(v1::WhoAmIResponse {
            principal: caller.principal.to_string(),
            superuser: caller.superuser,
            mechanism: caller.mechanism.as_str().into(),
        }))
    }

    async fn set_quota(&self, request: Request<v1::SetQuotaRequest>) -> Result<Response<v1::SetQuotaResponse>, Status> {
        let caller = self.api.permit(&request, Resource::cluster(), Operation::Alter)?;
        self.api.admit(&caller).await;
        let request = request.into_inner();
        let entity = quota_entity_from_wire(&request)?;
        let limits = quota_limits_from_wire(request.limits)?;
        self.change(SecurityCommand::SetQuota { entity: entity.clone(), limits }).await?;
        tracing::info!(target: "eddy::audit", by = %caller.principal, entity = %entity, limits = ?limits, "quota set");
        self.api
            .await_metadata(|view| {
                let set = view.metadata.security.quotas.get(&entity);
                if limits.is_unlimited() { set.is_none() } else { set == Some(&limits) }
            })
            .await;
        Ok(Response::new(v1::SetQuotaResponse {}))
    }

    async fn list_quotas(
        &self,
        request: Request<v1::ListQuotasRequest>,
    ) -> Result<Response<v1::ListQuotasResponse>, Status> {
        let caller = self.api.permit(&request, Resource::cluster(), Operation::Describe)?;
        self.api.admit(&caller).await;
        let view = self.api.cluster().current();
        let quotas =
            view.metadata.security.quotas.iter().map(|(entity, limits)| quota_to_wire(entity, limits)).collect();
        Ok(Response::new(v1::ListQuotasResponse { quotas }))
    }
}
