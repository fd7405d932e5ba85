// Gives ferrolm's errors their human message in Swift: the Rust `Display` of each error, which
// the FFI exports as the method `describe()`. uniffi 0.31 generates the error enums with a
// `LocalizedError` conformance whose `errorDescription` is `String(reflecting: self)`, and
// that is a dump of the case ("FerrolmOlmError.InvalidMac") unless the type is
// `CustomStringConvertible`. With this file, `error.localizedDescription`, `"\(error)"` and
// `error.description` are all the same text as Kotlin's and JavaScript's `message`.
//
// Compiled into the `Ferrolm` module beside the generated `Ferrolm.swift` (build.sh stages it);
// a new error enum in crates/ferrolm-ffi needs its line here, and the tests check each one.

extension FerrolmOlmError: CustomStringConvertible {
    public var description: String { describe() }
}

extension FerrolmMegolmError: CustomStringConvertible {
    public var description: String { describe() }
}

extension FerrolmSasError: CustomStringConvertible {
    public var description: String { describe() }
}

extension FerrolmPkError: CustomStringConvertible {
    public var description: String { describe() }
}

extension FerrolmPickleError: CustomStringConvertible {
    public var description: String { describe() }
}

extension FerrolmKeyExportError: CustomStringConvertible {
    public var description: String { describe() }
}

extension FerrolmSecretStorageError: CustomStringConvertible {
    public var description: String { describe() }
}

extension FerrolmUtilityError: CustomStringConvertible {
    public var description: String { describe() }
}
