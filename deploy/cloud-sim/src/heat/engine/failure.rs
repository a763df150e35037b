//! Why an engine step stopped, and how a resource failure reads from each stack up the tree.

use crate::error::SimError;
use crate::heat::Action;

/// A resource failure, with Heat's path (`resources.a.resources[0].resources.b`).
#[derive(Debug, Clone)]
pub(super) struct Failure {
    pub action: Action,
    pub err_type: String,
    pub path: String,
    pub message: String,
}

impl Failure {
    /// A failure of resource `name` in the stack it belongs to.
    pub(super) fn of_resource(
        action: Action,
        name: &str,
        err_type: impl Into<String>,
        message: impl Into<String>,
    ) -> Failure {
        Failure {
            action,
            err_type: err_type.into(),
            path: format!("resources.{name}"),
            message: message.into(),
        }
    }

    /// A failure of the engine itself (no resource to blame).
    pub(super) fn internal(action: Action, message: impl Into<String>) -> Failure {
        Failure {
            action,
            err_type: "ResourceFailure".into(),
            path: String::new(),
            message: message.into(),
        }
    }

    /// The stack being worked on disappeared (only a state reset does that).
    pub(super) fn vanished(action: Action) -> Failure {
        Failure::internal(action, "stack vanished")
    }

    /// A synchronous validation error met while the action runs (bad parameters).
    pub(super) fn validation(action: Action, e: SimError) -> Failure {
        match e {
            SimError::Heat { kind, message, .. } => Failure {
                action,
                err_type: kind,
                path: String::new(),
                message,
            },
            other => Failure::internal(action, other.to_string()),
        }
    }

    /// `ErrType: path: message` (a resource's status reason).
    pub(super) fn text(&self) -> String {
        if self.path.is_empty() {
            format!("{}: {}", self.err_type, self.message)
        } else {
            format!("{}: {}: {}", self.err_type, self.path, self.message)
        }
    }

    /// `Resource CREATE failed: ErrType: path: message` (a stack's status reason).
    pub(super) fn stack_reason(&self) -> String {
        format!("Resource {} failed: {}", self.action.as_str(), self.text())
    }

    /// The same failure seen from the parent stack of the resource `res` owning the nested
    /// stack it happened in.
    pub(super) fn nested_in(mut self, res: &str, group: bool) -> Failure {
        let inner = self
            .path
            .strip_prefix("resources.")
            .unwrap_or(&self.path)
            .to_string();
        self.path = if inner.is_empty() {
            format!("resources.{res}")
        } else if group {
            match inner.split_once('.') {
                Some((member, rest)) => format!("resources.{res}.resources[{member}].{rest}"),
                None => format!("resources.{res}.resources[{inner}]"),
            }
        } else {
            format!("resources.{res}.resources.{inner}")
        };
        self
    }
}

/// Why an engine step stopped.
#[derive(Debug)]
pub(super) enum EngineError {
    Failed(Failure),
    /// Superseded by a newer action on the root stack.
    Cancelled,
    TimedOut,
}

pub(super) type EResult<T> = Result<T, EngineError>;

/// The error to report when `e` follows `prev`: a cancellation wins, else the first one.
pub(super) fn merge(prev: Option<EngineError>, e: EngineError) -> EngineError {
    match (prev, e) {
        (_, EngineError::Cancelled) | (Some(EngineError::Cancelled), _) => EngineError::Cancelled,
        (Some(p), _) => p,
        (None, e) => e,
    }
}
