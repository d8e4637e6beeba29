//! Access control lists, evaluated deny-first.

use serde::{Deserialize, Serialize};

use crate::Principal;

/// What kind of thing an ACL protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceType {
    Topic,
    Group,
    /// The cluster as a whole (one resource, named [`Resource::CLUSTER_NAME`]): creating topics,
    /// broker and user administration, ACLs themselves.
    Cluster,
    /// A schema registry subject.
    Subject,
}

/// How an ACL's name matches resource names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PatternType {
    /// The name itself, or `*` for every resource of the type.
    Literal,
    /// Every resource whose name starts with it.
    Prefixed,
}

/// What a request does to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Read,
    Write,
    Create,
    Delete,
    /// See that it exists and its settings. Implied by read, write, delete and alter (as in
    /// Kafka): whoever may use a resource may see it.
    Describe,
    /// Change its settings.
    Alter,
    /// Every operation (in ACLs only).
    All,
}

/// Whether an ACL lets or stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    Allow,
    Deny,
}

/// One ACL: `permission` of `operation` on the resources `pattern`/`name` of `resource_type`
/// for `principal` (`User:*` for everyone).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    pub principal: Principal,
    pub resource_type: ResourceType,
    pub pattern: PatternType,
    pub name: String,
    pub operation: Operation,
    pub permission: Permission,
}

/// Selects ACLs for listing and removal: every field left out matches anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclFilter {
    pub principal: Option<Principal>,
    pub resource_type: Option<ResourceType>,
    pub pattern: Option<PatternType>,
    pub name: Option<String>,
    pub operation: Option<Operation>,
    pub permission: Option<Permission>,
}

impl AclFilter {
    pub fn matches(&self, acl: &AclBinding) -> bool {
        self.principal.as_ref().is_none_or(|p| *p == acl.principal)
            && self.resource_type.is_none_or(|t| t == acl.resource_type)
            && self.pattern.is_none_or(|p| p == acl.pattern)
            && self.name.as_ref().is_none_or(|n| *n == acl.name)
            && self.operation.is_none_or(|o| o == acl.operation)
            && self.permission.is_none_or(|p| p == acl.permission)
    }
}

/// A resource a request touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource<'a> {
    pub resource_type: ResourceType,
    pub name: &'a str,
}

impl<'a> Resource<'a> {
    /// The name of the one cluster resource.
    pub const CLUSTER_NAME: &'static str = "eddy-cluster";

    pub fn topic(name: &'a str) -> Self {
        Resource { resource_type: ResourceType::Topic, name }
    }

    pub fn group(name: &'a str) -> Self {
        Resource { resource_type: ResourceType::Group, name }
    }

    pub fn subject(name: &'a str) -> Self {
        Resource { resource_type: ResourceType::Subject, name }
    }

    pub fn cluster() -> Self {
        Resource { resource_type: ResourceType::Cluster, name: Self::CLUSTER_NAME }
    }
}

impl AclBinding {
    /// Whether this ACL speaks about `principal` doing `operation` on `resource`.
    pub fn applies(&self, principal: &Principal, resource: &Resource<'_>, operation: Operation) -> bool {
        let principal_matches = self.principal.is_any() || self.principal == *principal;
        let name_matches = match self.pattern {
            PatternType::Literal => self.name == "*" || self.name == resource.name,
            PatternType::Prefixed => resource.name.starts_with(&self.name),
        };
        let operation_matches = match (self.permission, self.operation) {
            (_, Operation::All) => true,
            (_, op) if op == operation => true,
            // An allowed use implies seeing; a denied use does not deny seeing.
            (Permission::Allow, Operation::Read | Operation::Write | Operation::Delete | Operation::Alter) => {
                operation == Operation::Describe
            }
            _ => false,
        };
        principal_matches && self.resource_type == resource.resource_type && name_matches && operation_matches
    }
}

/// Whether `acls` let `principal` do `operation` on `resource`: no applicable deny, and at
/// least one applicable allow. Nothing applies: denied.
pub fn authorize<'a>(
    acls: impl IntoIterator<Item = &'a AclBinding>,
    principal: &Principal,
    resource: &Resource<'_>,
    operation: Operation,
) -> bool {
    let mut allowed = false;
    for acl in acls.into_iter().filter(|a| a.applies(principal, resource, operation)) {
        match acl.permission {
            Permission::Deny => return false,
            Permission::Allow => allowed = true,
        }
    }
    allowed
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn acl(
        principal: &str,
        pattern: PatternType,
        name: &str,
        operation: Operation,
        permission: Permission,
    ) -> AclBinding {
        AclBinding {
            principal: Principal::parse(principal).unwrap(),
            resource_type: ResourceType::Topic,
            pattern,
            name: name.into(),
            operation,
            permission,
        }
    }

    #[test]
    fn examples() {
        use Operation::*;
        use PatternType::*;
        use Permission::*;
        let alice = Principal::user("alice").unwrap();
        let bob = Principal::user("bob").unwrap();
        let acls = vec![
            acl("User:alice", Prefixed, "orders.", Read, Allow),
            acl("User:*", Literal, "orders.secret", All, Deny),
            acl("User:bob", Literal, "*", Write, Allow),
        ];
        assert!(authorize(&acls, &alice, &Resource::topic("orders.eu"), Read));
        assert!(authorize(&acls, &alice, &Resource::topic("orders.eu"), Describe), "read implies describe");
        assert!(!authorize(&acls, &alice, &Resource::topic("orders.eu"), Write));
        assert!(!authorize(&acls, &alice, &Resource::topic("orders"), Read), "prefix is orders.");
        assert!(!authorize(&acls, &alice, &Resource::topic("orders.secret"), Read), "deny wins");
        assert!(authorize(&acls, &bob, &Resource::topic("payments"), Write));
        assert!(!authorize(&acls, &bob, &Resource::topic("orders.secret"), Write));
        assert!(!authorize(&acls, &bob, &Resource::group("payments"), Write), "another resource type");
        assert!(!authorize(&[], &bob, &Resource::topic("payments"), Describe), "nothing applies: denied");
        // A denied write does not deny describing.
        let acls = vec![acl("User:bob", Literal, "t", Write, Deny), acl("User:bob", Literal, "t", Describe, Allow)];
        assert!(authorize(&acls, &bob, &Resource::topic("t"), Describe));
    }

    fn operation() -> impl Strategy<Value = Operation> {
        prop_oneof![
            Just(Operation::Read),
            Just(Operation::Write),
            Just(Operation::Create),
            Just(Operation::Delete),
            Just(Operation::Describe),
            Just(Operation::Alter),
            Just(Operation::All),
        ]
    }

    fn binding() -> impl Strategy<Value = AclBinding> {
        (
            prop_oneof![Just("User:*"), Just("User:a"), Just("User:b")],
            prop_oneof![Just(PatternType::Literal), Just(PatternType::Prefixed)],
            prop_oneof![Just(""), Just("*"), Just("o"), Just("or"), Just("orders"), Just("p")],
            operation(),
            prop_oneof![Just(Permission::Allow), Just(Permission::Deny)],
        )
            .prop_map(|(p, pattern, name, op, permission)| acl(p, pattern, name, op, permission))
    }

    proptest! {
        /// Adding a deny that applies always denies, whatever else is there.
        #[test]
        fn deny_wins(acls in proptest::collection::vec(binding(), 0..12), op in operation(), name in "[a-z]{0,8}") {
            let principal = Principal::user("a").unwrap();
            let resource = Resource::topic(&name);
            prop_assume!(op != Operation::All);
            let mut with_deny = acls.clone();
            with_deny.push(acl("User:a", PatternType::Literal, &name, op, Permission::Deny));
            prop_assert!(!authorize(&with_deny, &principal, &resource, op));
            // And the order of the list never matters.
            let mut reversed = acls.clone();
            reversed.reverse();
            prop_assert_eq!(authorize(&acls, &principal, &resource, op), authorize(&reversed, &principal, &resource, op));
        }

        /// A prefixed allow covers exactly the names that start with it.
        #[test]
        fn prefix_matching(prefix in "[a-c]{0,3}", name in "[a-c]{0,5}") {
            let principal = Principal::user("a").unwrap();
            let acls = vec![acl("User:a", PatternType::Prefixed, &prefix, Operation::Read, Permission::Allow)];
            prop_assert_eq!(authorize(&acls, &principal, &Resource::topic(&name), Operation::Read), name.starts_with(&prefix));
        }

        /// Allows are monotonic: adding an allow never turns an allowed request into a denied one.
        #[test]
        fn allows_only_add(acls in proptest::collection::vec(binding(), 0..12), extra in binding(), op in operation(), name in "[a-z]{0,8}") {
            prop_assume!(op != Operation::All);
            let principal = Principal::user("b").unwrap();
            let resource = Resource::topic(&name);
            let before = authorize(&acls, &principal, &resource, op);
            let mut after = acls.clone();
            after.push(AclBinding { permission: Permission::Allow, ..extra });
            prop_assert!(!before || authorize(&after, &principal, &resource, op));
        }
    }
}
