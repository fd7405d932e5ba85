"""A thin, deterministic wrapper over libolm's C API (through python3-olm's cffi module).

Every call that consumes randomness takes it from the caller: the wrapper never touches
os.urandom. Every error from libolm raises `OlmError` with libolm's error string.
"""

from _libolm import ffi, lib  # python3-olm's cffi module: the raw C functions


class OlmError(Exception):
    """libolm returned olm_error(); the message is libolm's last-error string."""


def _check(result, last_error, obj):
    if result == lib.olm_error():
        raise OlmError(ffi.string(last_error(obj)).decode())
    return result


def _buf(data):
    """A fresh C buffer holding `data` (libolm overwrites some inputs, e.g. base64 in place)."""
    if isinstance(data, str):
        data = data.encode()
    return ffi.new("char[]", data), len(data)


def _out(length):
    return ffi.new("char[]", length)


def _unpack(buf, length):
    return bytes(ffi.unpack(buf, length))


def library_version():
    major, minor, patch = ffi.new("uint8_t *"), ffi.new("uint8_t *"), ffi.new("uint8_t *")
    lib.olm_get_library_version(major, minor, patch)
    return f"{major[0]}.{minor[0]}.{patch[0]}"


class Account:
    def __init__(self, random):
        self._mem = _out(lib.olm_account_size())
        self.ptr = lib.olm_account(self._mem)
        assert len(random) == lib.olm_create_account_random_length(self.ptr)
        r, n = _buf(random)
        self._c(lib.olm_create_account(self.ptr, r, n))

    @classmethod
    def unpickle(cls, key, pickle):
        self = cls.__new__(cls)
        self._mem = _out(lib.olm_account_size())
        self.ptr = lib.olm_account(self._mem)
        k, kn = _buf(key)
        p, pn = _buf(pickle)
        self._c(lib.olm_unpickle_account(self.ptr, k, kn, p, pn))
        return self

    def _c(self, result):
        return _check(result, lib.olm_account_last_error, self.ptr)

    def identity_keys(self):
        n = lib.olm_account_identity_keys_length(self.ptr)
        out = _out(n)
        self._c(lib.olm_account_identity_keys(self.ptr, out, n))
        return _unpack(out, n).decode()

    def one_time_keys_random_length(self, count):
        return lib.olm_account_generate_one_time_keys_random_length(self.ptr, count)

    def generate_one_time_keys(self, count, random):
        assert len(random) == self.one_time_keys_random_length(count)
        r, n = _buf(random)
        self._c(lib.olm_account_generate_one_time_keys(self.ptr, count, r, n))

    def one_time_keys(self):
        n = lib.olm_account_one_time_keys_length(self.ptr)
        out = _out(n)
        self._c(lib.olm_account_one_time_keys(self.ptr, out, n))
        return _unpack(out, n).decode()

    def fallback_random_length(self):
        return lib.olm_account_generate_fallback_key_random_length(self.ptr)

    def generate_fallback_key(self, random):
        assert len(random) == self.fallback_random_length()
        r, n = _buf(random)
        self._c(lib.olm_account_generate_fallback_key(self.ptr, r, n))

    def unpublished_fallback_key(self):
        n = lib.olm_account_unpublished_fallback_key_length(self.ptr)
        out = _out(n)
        self._c(lib.olm_account_unpublished_fallback_key(self.ptr, out, n))
        return _unpack(out, n).decode()

    def forget_old_fallback_key(self):
        lib.olm_account_forget_old_fallback_key(self.ptr)

    def mark_keys_as_published(self):
        self._c(lib.olm_account_mark_keys_as_published(self.ptr))

    def sign(self, message):
        n = lib.olm_account_signature_length(self.ptr)
        out = _out(n)
        m, mn = _buf(message)
        self._c(lib.olm_account_sign(self.ptr, m, mn, out, n))
        return _unpack(out, n).decode()

    def pickle(self, key):
        n = lib.olm_pickle_account_length(self.ptr)
        out = _out(n)
        k, kn = _buf(key)
        self._c(lib.olm_pickle_account(self.ptr, k, kn, out, n))
        return _unpack(out, n).decode()

    def remove_one_time_keys(self, session):
        return lib.olm_remove_one_time_keys(self.ptr, session.ptr)


class Session:
    def __init__(self):
        self._mem = _out(lib.olm_session_size())
        self.ptr = lib.olm_session(self._mem)

    def _c(self, result):
        return _check(result, lib.olm_session_last_error, self.ptr)

    @classmethod
    def outbound(cls, account, their_identity_key, their_one_time_key, random):
        self = cls()
        assert len(random) == lib.olm_create_outbound_session_random_length(self.ptr)
        i, iN = _buf(their_identity_key)
        o, oN = _buf(their_one_time_key)
        r, rn = _buf(random)
        self._c(lib.olm_create_outbound_session(self.ptr, account.ptr, i, iN, o, oN, r, rn))
        return self

    @classmethod
    def inbound(cls, account, message, their_identity_key=None):
        self = cls()
        m, mn = _buf(message)
        if their_identity_key is None:
            self._c(lib.olm_create_inbound_session(self.ptr, account.ptr, m, mn))
        else:
            i, iN = _buf(their_identity_key)
            self._c(lib.olm_create_inbound_session_from(self.ptr, account.ptr, i, iN, m, mn))
        return self

    @classmethod
    def unpickle(cls, key, pickle):
        self = cls()
        k, kn = _buf(key)
        p, pn = _buf(pickle)
        self._c(lib.olm_unpickle_session(self.ptr, k, kn, p, pn))
        return self

    def session_id(self):
        n = lib.olm_session_id_length(self.ptr)
        out = _out(n)
        self._c(lib.olm_session_id(self.ptr, out, n))
        return _unpack(out, n).decode()

    def has_received_message(self):
        return bool(lib.olm_session_has_received_message(self.ptr))

    def matches_inbound(self, message, their_identity_key=None):
        m, mn = _buf(message)
        if their_identity_key is None:
            return self._c(lib.olm_matches_inbound_session(self.ptr, m, mn)) == 1
        i, iN = _buf(their_identity_key)
        return self._c(lib.olm_matches_inbound_session_from(self.ptr, i, iN, m, mn)) == 1

    def encrypt_random_length(self):
        return lib.olm_encrypt_random_length(self.ptr)

    def encrypt(self, plaintext, random):
        assert len(random) == self.encrypt_random_length()
        message_type = self._c(lib.olm_encrypt_message_type(self.ptr))
        p, pn = _buf(plaintext)
        n = lib.olm_encrypt_message_length(self.ptr, pn)
        out = _out(n)
        r, rn = _buf(random)
        self._c(lib.olm_encrypt(self.ptr, p, pn, r, rn, out, n))
        return message_type, _unpack(out, n).decode()

    def decrypt(self, message_type, message):
        m, mn = _buf(message)
        maxlen = self._c(lib.olm_decrypt_max_plaintext_length(self.ptr, message_type, m, mn))
        out = _out(max(maxlen, 1))
        m, mn = _buf(message)
        n = self._c(lib.olm_decrypt(self.ptr, message_type, m, mn, out, maxlen))
        return _unpack(out, n)

    def pickle(self, key):
        n = lib.olm_pickle_session_length(self.ptr)
        out = _out(n)
        k, kn = _buf(key)
        self._c(lib.olm_pickle_session(self.ptr, k, kn, out, n))
        return _unpack(out, n).decode()


class OutboundGroupSession:
    def __init__(self, random=None):
        self._mem = _out(lib.olm_outbound_group_session_size())
        self.ptr = lib.olm_outbound_group_session(self._mem)
        if random is not None:
            assert len(random) == lib.olm_init_outbound_group_session_random_length(self.ptr)
            r = ffi.new("uint8_t[]", random)
            self._c(lib.olm_init_outbound_group_session(self.ptr, r, len(random)))

    def _c(self, result):
        return _check(result, lib.olm_outbound_group_session_last_error, self.ptr)

    @classmethod
    def unpickle(cls, key, pickle):
        self = cls()
        k, kn = _buf(key)
        p, pn = _buf(pickle)
        self._c(lib.olm_unpickle_outbound_group_session(self.ptr, k, kn, p, pn))
        return self

    def session_id(self):
        n = lib.olm_outbound_group_session_id_length(self.ptr)
        out = ffi.new("uint8_t[]", n)
        self._c(lib.olm_outbound_group_session_id(self.ptr, out, n))
        return _unpack(out, n).decode()

    def message_index(self):
        return lib.olm_outbound_group_session_message_index(self.ptr)

    def session_key(self):
        n = lib.olm_outbound_group_session_key_length(self.ptr)
        out = ffi.new("uint8_t[]", n)
        self._c(lib.olm_outbound_group_session_key(self.ptr, out, n))
        return _unpack(out, n).decode()

    def encrypt(self, plaintext):
        if isinstance(plaintext, str):
            plaintext = plaintext.encode()
        p = ffi.new("uint8_t[]", plaintext)
        n = lib.olm_group_encrypt_message_length(self.ptr, len(plaintext))
        out = ffi.new("uint8_t[]", n)
        self._c(lib.olm_group_encrypt(self.ptr, p, len(plaintext), out, n))
        return _unpack(out, n).decode()

    def pickle(self, key):
        n = lib.olm_pickle_outbound_group_session_length(self.ptr)
        out = _out(n)
        k, kn = _buf(key)
        self._c(lib.olm_pickle_outbound_group_session(self.ptr, k, kn, out, n))
        return _unpack(out, n).decode()


class InboundGroupSession:
    def __init__(self):
        self._mem = _out(lib.olm_inbound_group_session_size())
        self.ptr = lib.olm_inbound_group_session(self._mem)

    def _c(self, result):
        return _check(result, lib.olm_inbound_group_session_last_error, self.ptr)

    @classmethod
    def create(cls, session_key):
        self = cls()
        k = ffi.new("uint8_t[]", session_key.encode())
        self._c(lib.olm_init_inbound_group_session(self.ptr, k, len(session_key)))
        return self

    @classmethod
    def import_key(cls, exported_key):
        self = cls()
        k = ffi.new("uint8_t[]", exported_key.encode())
        self._c(lib.olm_import_inbound_group_session(self.ptr, k, len(exported_key)))
        return self

    @classmethod
    def unpickle(cls, key, pickle):
        self = cls()
        k, kn = _buf(key)
        p, pn = _buf(pickle)
        self._c(lib.olm_unpickle_inbound_group_session(self.ptr, k, kn, p, pn))
        return self

    def session_id(self):
        n = lib.olm_inbound_group_session_id_length(self.ptr)
        out = ffi.new("uint8_t[]", n)
        self._c(lib.olm_inbound_group_session_id(self.ptr, out, n))
        return _unpack(out, n).decode()

    def first_known_index(self):
        return lib.olm_inbound_group_session_first_known_index(self.ptr)

    def is_verified(self):
        return bool(lib.olm_inbound_group_session_is_verified(self.ptr))

    def decrypt(self, message):
        m = ffi.new("uint8_t[]", message.encode())
        maxlen = self._c(lib.olm_group_decrypt_max_plaintext_length(self.ptr, m, len(message)))
        out = ffi.new("uint8_t[]", max(maxlen, 1))
        index = ffi.new("uint32_t *")
        m = ffi.new("uint8_t[]", message.encode())
        n = self._c(lib.olm_group_decrypt(self.ptr, m, len(message), out, maxlen, index))
        return _unpack(out, n), index[0]

    def export(self, message_index):
        n = lib.olm_export_inbound_group_session_length(self.ptr)
        out = ffi.new("uint8_t[]", n)
        self._c(lib.olm_export_inbound_group_session(self.ptr, out, n, message_index))
        return _unpack(out, n).decode()

    def pickle(self, key):
        n = lib.olm_pickle_inbound_group_session_length(self.ptr)
        out = _out(n)
        k, kn = _buf(key)
        self._c(lib.olm_pickle_inbound_group_session(self.ptr, k, kn, out, n))
        return _unpack(out, n).decode()


class Sas:
    def __init__(self, random):
        self._mem = _out(lib.olm_sas_size())
        self.ptr = lib.olm_sas(self._mem)
        assert len(random) == lib.olm_create_sas_random_length(self.ptr)
        r, n = _buf(random)
        self._c(lib.olm_create_sas(self.ptr, r, n))

    def _c(self, result):
        return _check(result, lib.olm_sas_last_error, self.ptr)

    def public_key(self):
        n = lib.olm_sas_pubkey_length(self.ptr)
        out = _out(n)
        self._c(lib.olm_sas_get_pubkey(self.ptr, out, n))
        return _unpack(out, n).decode()

    def set_their_key(self, key):
        k, kn = _buf(key)
        self._c(lib.olm_sas_set_their_key(self.ptr, k, kn))

    def generate_bytes(self, info, length):
        i, iN = _buf(info)
        out = _out(max(length, 1))
        self._c(lib.olm_sas_generate_bytes(self.ptr, i, iN, out, length))
        return _unpack(out, length)

    def _mac(self, function, message, info):
        m, mn = _buf(message)
        i, iN = _buf(info)
        n = lib.olm_sas_mac_length(self.ptr)
        out = _out(n)
        self._c(function(self.ptr, m, mn, i, iN, out, n))
        return _unpack(out, n).decode()

    def calculate_mac_fixed_base64(self, message, info):
        return self._mac(lib.olm_sas_calculate_mac_fixed_base64, message, info)

    def calculate_mac_legacy(self, message, info):
        return self._mac(lib.olm_sas_calculate_mac, message, info)


class PkEncryption:
    def __init__(self, recipient_key):
        self._mem = _out(lib.olm_pk_encryption_size())
        self.ptr = lib.olm_pk_encryption(self._mem)
        k, kn = _buf(recipient_key)
        self._c(lib.olm_pk_encryption_set_recipient_key(self.ptr, k, kn))

    def _c(self, result):
        return _check(result, lib.olm_pk_encryption_last_error, self.ptr)

    def encrypt(self, plaintext, random):
        assert len(random) == lib.olm_pk_encrypt_random_length(self.ptr)
        p, pn = _buf(plaintext)
        cn = lib.olm_pk_ciphertext_length(self.ptr, pn)
        c = _out(cn)
        mn = lib.olm_pk_mac_length(self.ptr)
        m = _out(mn)
        en = lib.olm_pk_key_length()
        e = _out(en)
        r, rn = _buf(random)
        self._c(lib.olm_pk_encrypt(self.ptr, p, pn, c, cn, m, mn, e, en, r, rn))
        return _unpack(c, cn).decode(), _unpack(m, mn).decode(), _unpack(e, en).decode()


class PkDecryption:
    def __init__(self, private_key=None):
        self._mem = _out(lib.olm_pk_decryption_size())
        self.ptr = lib.olm_pk_decryption(self._mem)
        self.public_key = None
        if private_key is not None:
            assert len(private_key) == lib.olm_pk_private_key_length()
            n = lib.olm_pk_key_length()
            out = _out(n)
            k, kn = _buf(private_key)
            self._c(lib.olm_pk_key_from_private(self.ptr, out, n, k, kn))
            self.public_key = _unpack(out, n).decode()

    def _c(self, result):
        return _check(result, lib.olm_pk_decryption_last_error, self.ptr)

    @classmethod
    def unpickle(cls, key, pickle):
        self = cls()
        k, kn = _buf(key)
        p, pn = _buf(pickle)
        n = lib.olm_pk_key_length()
        out = _out(n)
        self._c(lib.olm_unpickle_pk_decryption(self.ptr, k, kn, p, pn, out, n))
        self.public_key = _unpack(out, n).decode()
        return self

    def private_key(self):
        n = lib.olm_pk_private_key_length()
        out = _out(n)
        self._c(lib.olm_pk_get_private_key(self.ptr, out, n))
        return _unpack(out, n)

    def decrypt(self, ciphertext, mac, ephemeral_key):
        e, en = _buf(ephemeral_key)
        m, mn = _buf(mac)
        c, cn = _buf(ciphertext)
        maxlen = lib.olm_pk_max_plaintext_length(self.ptr, cn)
        out = _out(max(maxlen, 1))
        n = self._c(lib.olm_pk_decrypt(self.ptr, e, en, m, mn, c, cn, out, maxlen))
        return _unpack(out, n)

    def pickle(self, key):
        n = lib.olm_pickle_pk_decryption_length(self.ptr)
        out = _out(n)
        k, kn = _buf(key)
        self._c(lib.olm_pickle_pk_decryption(self.ptr, k, kn, out, n))
        return _unpack(out, n).decode()


class PkSigning:
    def __init__(self, seed):
        self._mem = _out(lib.olm_pk_signing_size())
        self.ptr = lib.olm_pk_signing(self._mem)
        assert len(seed) == lib.olm_pk_signing_seed_length()
        n = lib.olm_pk_signing_public_key_length()
        out = _out(n)
        s, sn = _buf(seed)
        self._c(lib.olm_pk_signing_key_from_seed(self.ptr, out, n, s, sn))
        self.public_key = _unpack(out, n).decode()

    def _c(self, result):
        return _check(result, lib.olm_pk_signing_last_error, self.ptr)

    def sign(self, message):
        m, mn = _buf(message)
        n = lib.olm_pk_signature_length()
        out = _out(n)
        self._c(lib.olm_pk_sign(self.ptr, m, mn, out, n))
        return _unpack(out, n).decode()


class Utility:
    def __init__(self):
        self._mem = _out(lib.olm_utility_size())
        self.ptr = lib.olm_utility(self._mem)

    def ed25519_verify(self, key, message, signature):
        k, kn = _buf(key)
        m, mn = _buf(message)
        s, sn = _buf(signature)
        return lib.olm_ed25519_verify(self.ptr, k, kn, m, mn, s, sn) != lib.olm_error()
