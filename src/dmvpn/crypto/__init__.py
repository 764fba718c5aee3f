"""Algorithm registry and key derivation; every primitive from ``cryptography``.

* :mod:`.ike_algorithms` - IKEv1 phase-1 ciphers (AES-CBC, 3DES), hash and PRF by number
* :mod:`.dh_groups` - MODP 1/2/5/14-18 and ECP 19-21 key pairs from an injected random source
* :mod:`.ikev1_kdf` - SKEYID*, key expansion, IVs, HASH_I/R, Quick Mode hashes, KEYMAT, NAT-D
* :mod:`.esp_algorithms` - ESP ciphers and integrity algorithms
"""
