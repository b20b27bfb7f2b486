use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use stepwise_workflows::ActionCatalog;

use crate::action::{Action, DynAction, Erased};
use crate::catalog;

/// Every action the process can run, keyed `provider.action`.
#[derive(Clone, Default)]
pub struct Registry {
    actions: BTreeMap<&'static str, Arc<dyn DynAction>>,
}

impl Registry {
    /// The registry with every built-in action of the catalog.
    pub fn builtin() -> Self {
        let mut registry = Self::default();
        catalog::register_all(&mut registry);
        registry
    }

    /// Adds a Rust action. A name registered twice (a Rust action also declared in
    /// `actions.yaml`, say) is a catalog bug, reported by every test that builds the registry.
    pub fn register<A: Action>(&mut self, action: A) {
        self.insert(Erased::erase(action));
    }

    /// Adds an action that is already type-erased (a declared one).
    pub(crate) fn insert(&mut self, action: Arc<dyn DynAction>) {
        let name = action.name();
        let previous = self.actions.insert(name, action);
        assert!(previous.is_none(), "action `{name}` is registered twice");
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn DynAction>> {
        self.actions.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn DynAction>> {
        self.actions.values()
    }
}

impl ActionCatalog for Registry {
    fn input_schema(&self, name: &str) -> Option<&Value> {
        self.actions.get(name).map(|action| action.input_schema())
    }

    fn action_names(&self) -> Vec<&str> {
        self.actions.keys().copied().collect()
    }
}
