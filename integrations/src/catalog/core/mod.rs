//! `core.*`: actions that need nothing but the engine.

mod fail;
mod log;
mod set;
mod sleep;
mod wait_for_webhook;

pub use fail::{Fail, FailInput, FailOutput};
pub use log::{Log, LogInput, LogOutput};
pub use set::{Set, SetValues};
pub use sleep::{Sleep, SleepInput, SleepOutput};
pub use wait_for_webhook::{WaitForWebhook, WaitForWebhookInput, WebhookEvent};

use crate::registry::Registry;

pub(crate) fn register(registry: &mut Registry) {
    registry.register(Log);
    registry.register(Set);
    registry.register(Fail);
    registry.register(Sleep);
    registry.register(WaitForWebhook);
}
