//! The commands language (`commands/*.commands`): placeholder, being written.
