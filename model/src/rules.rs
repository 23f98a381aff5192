//! The autonomic rules language (`rules.autonomic/*.drl`): placeholder, being written.
