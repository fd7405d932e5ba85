//! Dehydrated devices.
