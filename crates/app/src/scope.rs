//! Who the caller is and what they may see.
//!
//! Roles come from `users.role` and the manager hierarchy (`users.manager_id`):
//! a rep sees their own book; a manager their own and every report's, down
//! the hierarchy; a director or an admin everything. Every use case takes a
//! [`Caller`] and filters by its [`Scope`], so no route can forget it.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use pipewise_store::access::UserRecord;
use serde::Serialize;

/// A caller's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Rep,
    Manager,
    Director,
    /// Everything a director sees, and the admin actions (imports, models,
    /// tokens, audit).
    Admin,
}

impl Role {
    /// The role a `users.role` text names, if any: `admin`; `director`, `vp`,
    /// `head`, `chief`, `executive`, `cro`; `manager`, `lead`; `rep`, `ae`,
    /// `sdr`, `bdr`, `account executive`, `sales`. Case-insensitive.
    pub fn parse(text: &str) -> Option<Role> {
        let t = text.trim().to_lowercase();
        let has = |w: &[&str]| {
            w.iter()
                .any(|x| t.split(|c: char| !c.is_alphanumeric()).any(|p| p == *x))
        };
        if has(&["admin", "administrator"]) {
            Some(Role::Admin)
        } else if has(&[
            "director",
            "vp",
            "head",
            "chief",
            "executive",
            "cro",
            "president",
        ]) && !has(&["account"])
        {
            Some(Role::Director)
        } else if has(&["manager", "lead", "supervisor"]) {
            Some(Role::Manager)
        } else if has(&["rep", "ae", "sdr", "bdr", "account", "sales", "seller"]) {
            Some(Role::Rep)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::Rep => "rep",
            Role::Manager => "manager",
            Role::Director => "director",
            Role::Admin => "admin",
        }
    }
}

/// The owners whose records a caller may see.
#[derive(Debug, Clone)]
pub enum Scope {
    All,
    /// These users' records (the caller and, for a manager, every report
    /// down the hierarchy).
    Users(Arc<BTreeSet<String>>),
}

impl Scope {
    /// Whether a record owned by `owner` is visible (records with no owner
    /// only to a caller who sees everything).
    pub fn allows(&self, owner: Option<&str>) -> bool {
        match self {
            Scope::All => true,
            Scope::Users(u) => owner.is_some_and(|o| u.contains(o)),
        }
    }

    /// The users visible (`None`: everyone).
    pub fn users(&self) -> Option<&BTreeSet<String>> {
        match self {
            Scope::All => None,
            Scope::Users(u) => Some(u),
        }
    }
}

/// A signed-in caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: String,
    pub name: String,
    pub role: Role,
    pub scope: Scope,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// The users and their hierarchy, to resolve callers.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    users: HashMap<String, UserRecord>,
    reports: HashMap<String, Vec<String>>,
    admins: BTreeSet<String>,
}

impl Directory {
    /// The users, and those granted admin in pipewise (`pipewise user grant-admin`).
    pub fn new(users: Vec<UserRecord>, admins: Vec<String>) -> Directory {
        let mut reports: HashMap<String, Vec<String>> = HashMap::new();
        for u in &users {
            if let Some(m) = &u.manager_id
                && m != &u.id
            {
                reports.entry(m.clone()).or_default().push(u.id.clone());
            }
        }
        Directory {
            users: users.into_iter().map(|u| (u.id.clone(), u)).collect(),
            reports,
            admins: admins.into_iter().collect(),
        }
    }

    pub fn user(&self, id: &str) -> Option<&UserRecord> {
        self.users.get(id)
    }

    /// The user's role: admin when granted; else the one `users.role`
    /// names; failing that, a manager when someone reports to them, else a rep.
    pub fn role(&self, id: &str) -> Option<Role> {
        let u = self.users.get(id)?;
        if self.admins.contains(id) {
            return Some(Role::Admin);
        }
        Some(
            u.role
                .as_deref()
                .and_then(Role::parse)
                .unwrap_or(if self.reports.contains_key(id) {
                    Role::Manager
                } else {
                    Role::Rep
                }),
        )
    }

    /// The user and everyone below them in the hierarchy (cycles are cut).
    pub fn below(&self, id: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![id.to_string()];
        while let Some(u) = stack.pop() {
            if !seen.insert(u.clone()) {
                continue;
            }
            if let Some(r) = self.reports.get(&u) {
                stack.extend(r.iter().cloned());
            }
        }
        seen
    }

    /// The caller for a user id; `None` when there is no such user.
    pub fn caller(&self, id: &str) -> Option<Caller> {
        let u = self.users.get(id)?;
        let role = self.role(id)?;
        let scope = match role {
            Role::Director | Role::Admin => Scope::All,
            Role::Manager => Scope::Users(Arc::new(self.below(id))),
            Role::Rep => Scope::Users(Arc::new(BTreeSet::from([id.to_string()]))),
        };
        Some(Caller {
            user_id: u.id.clone(),
            name: u.name.clone(),
            role,
            scope,
        })
    }

    /// Users by id, sorted.
    pub fn all(&self) -> Vec<&UserRecord> {
        let mut v: Vec<&UserRecord> = self.users.values().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, role: Option<&str>, manager: Option<&str>) -> UserRecord {
        UserRecord {
            id: id.into(),
            name: id.to_uppercase(),
            email: None,
            role: role.map(Into::into),
            manager_id: manager.map(Into::into),
            team_id: None,
            region: None,
        }
    }

    #[test]
    fn roles_and_scopes_follow_the_hierarchy() {
        let d = Directory::new(
            vec![
                user("vp", Some("VP Sales"), None),
                user("m1", Some("Sales Manager"), Some("vp")),
                user("m2", None, Some("m1")),
                user("r1", Some("Account Executive"), Some("m2")),
                user("r2", Some("rep"), Some("m1")),
                user("x", None, Some("x")),
                user("ad", Some("admin"), None),
                user("ops", Some("RevOps analyst"), None),
            ],
            vec!["ops".into()],
        );
        assert_eq!(d.role("vp"), Some(Role::Director));
        assert_eq!(d.role("m1"), Some(Role::Manager));
        // No role text, but someone reports to them.
        assert_eq!(d.role("m2"), Some(Role::Manager));
        assert_eq!(d.role("r1"), Some(Role::Rep));
        assert_eq!(d.role("x"), Some(Role::Rep));
        assert_eq!(d.role("ad"), Some(Role::Admin));
        assert_eq!(d.role("ops"), Some(Role::Admin));
        let m1 = d.caller("m1").unwrap();
        assert!(m1.scope.allows(Some("r1")) && m1.scope.allows(Some("r2")));
        assert!(!m1.scope.allows(Some("vp")) && !m1.scope.allows(None));
        let r1 = d.caller("r1").unwrap();
        assert!(r1.scope.allows(Some("r1")) && !r1.scope.allows(Some("r2")));
        assert!(d.caller("vp").unwrap().scope.allows(None));
        assert!(d.caller("nobody").is_none());
    }
}
