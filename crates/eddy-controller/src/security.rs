//! Users, ACLs and quotas: replicated with the cluster metadata, so every broker authenticates,
//! authorizes and throttles with its copy (eddy-auth holds the model and its evaluation).

use std::collections::{BTreeMap, BTreeSet};

use eddy_auth::{AclBinding, AclFilter, QuotaEntity, QuotaLimits, ScramCredential};
use serde::{Deserialize, Serialize};

use crate::error::ControllerError;

/// Most users a cluster holds.
pub const USERS_MAX: usize = 10_000;
/// Most ACLs a cluster holds: every broker evaluates them on every request.
pub const ACLS_MAX: usize = 10_000;
/// Most quotas a cluster holds.
pub const QUOTAS_MAX: usize = 10_000;

/// The users (by name, with their SCRAM credentials), the ACLs and the quotas set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityState {
    pub users: BTreeMap<String, ScramCredential>,
    pub acls: BTreeSet<AclBinding>,
    pub quotas: BTreeMap<QuotaEntity, QuotaLimits>,
}

/// A change to users or ACLs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SecurityCommand {
    UpsertUser {
        name: String,
        credential: ScramCredential,
    },
    DeleteUser {
        name: String,
    },
    CreateAcls {
        acls: Vec<AclBinding>,
    },
    DeleteAcls {
        filter: AclFilter,
    },
    /// Sets the quota of `entity`; limits that limit nothing remove it.
    SetQuota {
        entity: QuotaEntity,
        limits: QuotaLimits,
    },
}

impl std::fmt::Display for SecurityCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecurityCommand::UpsertUser { name, .. } => write!(f, "upsert-user({name})"),
            SecurityCommand::DeleteUser { name } => write!(f, "delete-user({name})"),
            SecurityCommand::CreateAcls { acls } => write!(f, "create-acls({})", acls.len()),
            SecurityCommand::DeleteAcls { .. } => write!(f, "delete-acls"),
            SecurityCommand::SetQuota { entity, .. } => write!(f, "set-quota({entity})"),
        }
    }
}

impl SecurityState {
    /// Applies `command`: the ACLs it deleted, or why it was refused. The same on every
    /// replica (a refusal depends only on the state).
    pub fn apply(&mut self, command: &SecurityCommand) -> Result<Vec<AclBinding>, ControllerError> {
        match command {
            SecurityCommand::UpsertUser { name, credential } => {
                if !self.users.contains_key(name) && self.users.len() >= USERS_MAX {
                    return Err(ControllerError::Invalid(format!("the cluster holds {USERS_MAX} users, the most")));
                }
                self.users.insert(name.clone(), credential.clone());
                Ok(Vec::new())
            }
            SecurityCommand::DeleteUser { name } => match self.users.remove(name) {
                Some(_) => Ok(Vec::new()),
                None => Err(ControllerError::UnknownUser(name.clone())),
            },
            SecurityCommand::CreateAcls { acls } => {
                let new = acls.iter().filter(|a| !self.acls.contains(a)).count();
                if self.acls.len() + new > ACLS_MAX {
                    return Err(ControllerError::Invalid(format!("the cluster holds {ACLS_MAX} ACLs, the most")));
                }
                self.acls.extend(acls.iter().cloned());
                Ok(Vec::new())
            }
            SecurityCommand::DeleteAcls { filter } => {
                let deleted: Vec<AclBinding> = self.acls.iter().filter(|a| filter.matches(a)).cloned().collect();
                for acl in &deleted {
                    self.acls.remove(acl);
                }
                Ok(deleted)
            }
            SecurityCommand::SetQuota { entity, limits } => {
                if let QuotaEntity::Principal(principal) = entity
                    && principal.is_any()
                {
                    return Err(ControllerError::Invalid("User:* is not one principal: set the default quota".into()));
                }
                limits.check().map_err(ControllerError::Invalid)?;
                if limits.is_unlimited() {
                    self.quotas.remove(entity);
                } else {
                    if !self.quotas.contains_key(entity) && self.quotas.len() >= QUOTAS_MAX {
                        return Err(ControllerError::Invalid(format!(
                            "the cluster holds {QUOTAS_MAX} quotas, the most"
                        )));
                    }
                    self.quotas.insert(entity.clone(), *limits);
                }
                Ok(Vec::new())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use eddy_auth::{Operation, PatternType, Permission, Principal, ResourceType};

    use super::*;

    fn read(principal: &str, topic: &str) -> AclBinding {
        AclBinding {
            principal: Principal::parse(principal).unwrap(),
            resource_type: ResourceType::Topic,
            pattern: PatternType::Literal,
            name: topic.into(),
            operation: Operation::Read,
            permission: Permission::Allow,
        }
    }

    #[test]
    fn users_and_acls_change_as_commanded() {
        let mut state = SecurityState::default();
        let credential = ScramCredential::with_salt("pw", vec![1; 16], 4096);
        state.apply(&SecurityCommand::UpsertUser { name: "alice".into(), credential: credential.clone() }).unwrap();
        assert!(state.users["alice"].verify("pw"));
        let unknown = state.apply(&SecurityCommand::DeleteUser { name: "bob".into() });
        assert_eq!(unknown, Err(ControllerError::UnknownUser("bob".into())));

        let acls = vec![read("User:alice", "orders"), read("User:bob", "orders"), read("User:alice", "payments")];
        state.apply(&SecurityCommand::CreateAcls { acls: acls.clone() }).unwrap();
        state.apply(&SecurityCommand::CreateAcls { acls: acls[..1].to_vec() }).unwrap();
        assert_eq!(state.acls.len(), 3, "adding an existing ACL is a no-op");
        let filter = AclFilter { principal: Some(Principal::parse("User:alice").unwrap()), ..Default::default() };
        let deleted = state.apply(&SecurityCommand::DeleteAcls { filter }).unwrap();
        assert_eq!(deleted.len(), 2);
        assert_eq!(state.acls.iter().collect::<Vec<_>>(), vec![&acls[1]]);
    }

    #[test]
    fn quotas_are_set_replaced_and_removed() {
        let mut state = SecurityState::default();
        let alice = QuotaEntity::Principal(Principal::parse("User:alice").unwrap());
        let limits = QuotaLimits { requests_per_second: Some(10), ..QuotaLimits::default() };
        state.apply(&SecurityCommand::SetQuota { entity: alice.clone(), limits }).unwrap();
        state.apply(&SecurityCommand::SetQuota { entity: QuotaEntity::Default, limits }).unwrap();
        assert_eq!(state.quotas.len(), 2);
        let zero = QuotaLimits { requests_per_second: Some(0), ..QuotaLimits::default() };
        assert!(state.apply(&SecurityCommand::SetQuota { entity: alice.clone(), limits: zero }).is_err());
        let anyone = QuotaEntity::Principal(Principal::parse("User:*").unwrap());
        assert!(state.apply(&SecurityCommand::SetQuota { entity: anyone, limits }).is_err());
        state.apply(&SecurityCommand::SetQuota { entity: alice.clone(), limits: QuotaLimits::default() }).unwrap();
        assert_eq!(state.quotas.keys().collect::<Vec<_>>(), vec![&QuotaEntity::Default]);
    }
}
