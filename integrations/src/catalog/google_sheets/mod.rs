//! `google_sheets.*`: the Google Sheets API through a connection (a Google account through
//! the tenant's OAuth client, asked for offline access so its token refreshes). Every action
//! is declared in `actions.yaml`: rows in, rows out, ranges in A1 notation.

use crate::registry::Registry;

pub(crate) fn register(registry: &mut Registry) {
    crate::declarative::register(registry, provider!());
}

#[cfg(test)]
mod tests;
