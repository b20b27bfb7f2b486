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

    pub fn register<A: Action>(&mut self, action: A) {
        self.actions.insert(A::NAME, Erased::erase(action));
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
