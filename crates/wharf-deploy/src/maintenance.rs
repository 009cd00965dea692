//! Maintenance mode: an app's routes answer 503 with `Retry-After` and a
//! message, while its instances keep running and being health-checked.
//! Recorded in the store, so it survives a restart of the server
//! (`prepare_recovery` puts it back before anything answers).

use wharf_store::EventLevel;

use crate::{DeployError, Engine};

impl Engine {
    /// Turns maintenance of `app` on (with `message`; empty or `None` for
    /// the default page when `on`) or off. One table swap.
    pub fn set_maintenance(
        &self,
        app: &str,
        on: bool,
        message: Option<&str>,
    ) -> Result<(), DeployError> {
        let row = self.store.app(app)?;
        let message = on.then(|| message.unwrap_or("").trim().to_owned());
        self.store.set_maintenance(row.id, message.as_deref())?;
        self.routes.set_maintenance(app, message.as_deref());
        let said = match &message {
            None => "maintenance mode off".to_owned(),
            Some(m) if m.is_empty() => "maintenance mode on".to_owned(),
            Some(m) => format!("maintenance mode on: {m}"),
        };
        tracing::info!(app, "{said}");
        self.store
            .add_event(Some(row.id), None, EventLevel::Info, &said)?;
        Ok(())
    }
}
