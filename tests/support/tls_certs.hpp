// Certificates for the TLS tests, made at run time with OpenSSL 3's libcrypto (ECDSA P-256
// keys, X.509 v3, SHA-256 signatures) and written to a fresh temporary directory that is
// removed again with the object. No private key is ever part of the source tree: every run
// makes its own.
//
//   ca           a CA certificate (its key lives only in memory, long enough to sign)
//   server       signed by ca, for DNS:localhost, IP:127.0.0.1 and IP:::1
//   wrong_host   signed by ca, for DNS:wrong-host.example only
//   expired      signed by ca, for localhost, valid until yesterday
//   self_signed  for localhost, signed by its own key
//   client       signed by ca, for client authentication (CN rill-test-client)
#pragma once

#include <stdlib.h>
#include <sys/stat.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>

namespace rill_test {

// A PEM file the tests hand to a program, and the same text for APIs that take it in memory.
struct pem_file {
    std::filesystem::path path;
    std::string pem;
};

// A certificate and its private key (PKCS#8, not encrypted).
struct certificate_and_key {
    pem_file certificate;
    pem_file private_key;
};

inline constexpr auto tls_test_certificate_lifetime = std::chrono::hours(24 * 30);
inline constexpr auto tls_test_clock_skew_allowance = std::chrono::hours(1);

namespace tls_certs_detail {

struct key_free {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct x509_free {
    void operator()(X509* x) const { X509_free(x); }
};
struct bio_free {
    void operator()(BIO* b) const { BIO_free(b); }
};
using key_ptr = std::unique_ptr<EVP_PKEY, key_free>;
using x509_ptr = std::unique_ptr<X509, x509_free>;
using bio_ptr = std::unique_ptr<BIO, bio_free>;

// Throws with OpenSSL's own reason for the last failure.
[[noreturn]] inline void fail(const std::string& what) {
    const unsigned long code = ERR_get_error();
    char reason[256] = "no OpenSSL error queued";
    if (code != 0) ERR_error_string_n(code, reason, sizeof reason);
    ERR_clear_error();
    throw std::runtime_error("tls test certificates: " + what + ": " + reason);
}

inline key_ptr make_p256_key() {
    key_ptr key(EVP_EC_gen("P-256"));
    if (!key) fail("EVP_EC_gen P-256");
    return key;
}

inline void add_extension(X509* cert, X509* issuer, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    if (ext == nullptr) fail(std::string("extension ") + OBJ_nid2sn(nid) + "=" + value);
    const int added = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    if (added != 1) fail(std::string("X509_add_ext ") + OBJ_nid2sn(nid));
}

struct certificate_request {
    std::string common_name;
    std::string subject_alt_names;  // "DNS:localhost,IP:127.0.0.1"; empty: none
    bool is_ca = false;
    const char* extended_key_usage = nullptr;  // "serverAuth", "clientAuth"; nullptr: none
    long not_before_seconds = 0;  // from now
    long not_after_seconds = 0;  // from now
    long serial = 1;
};

// A certificate for `key`, signed by `issuer_key`; `issuer` null means self-signed.
inline x509_ptr make_certificate(const certificate_request& r, EVP_PKEY* key, X509* issuer,
                                 EVP_PKEY* issuer_key) {
    x509_ptr cert(X509_new());
    if (!cert) fail("X509_new");
    if (X509_set_version(cert.get(), X509_VERSION_3) != 1) fail("X509_set_version");
    if (ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), r.serial) != 1) fail("serial");
    if (X509_gmtime_adj(X509_getm_notBefore(cert.get()), r.not_before_seconds) == nullptr ||
        X509_gmtime_adj(X509_getm_notAfter(cert.get()), r.not_after_seconds) == nullptr)
        fail("validity");
    if (X509_set_pubkey(cert.get(), key) != 1) fail("X509_set_pubkey");
    X509_NAME* name = X509_get_subject_name(cert.get());
    if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>("rill tests"), -1, -1,
                                   0) != 1 ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>(r.common_name.c_str()),
                                   -1, -1, 0) != 1)
        fail("subject " + r.common_name);
    X509* signer = issuer != nullptr ? issuer : cert.get();
    if (X509_set_issuer_name(cert.get(), X509_get_subject_name(signer)) != 1)
        fail("X509_set_issuer_name");
    if (r.is_ca) {
        add_extension(cert.get(), signer, NID_basic_constraints, "critical,CA:TRUE");
        add_extension(cert.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_extension(cert.get(), signer, NID_basic_constraints, "critical,CA:FALSE");
        add_extension(cert.get(), signer, NID_key_usage, "critical,digitalSignature");
    }
    if (r.extended_key_usage != nullptr)
        add_extension(cert.get(), signer, NID_ext_key_usage, r.extended_key_usage);
    if (!r.subject_alt_names.empty())
        add_extension(cert.get(), signer, NID_subject_alt_name, r.subject_alt_names.c_str());
    add_extension(cert.get(), signer, NID_subject_key_identifier, "hash");
    if (issuer != nullptr)
        add_extension(cert.get(), signer, NID_authority_key_identifier, "keyid:always");
    if (X509_sign(cert.get(), issuer_key, EVP_sha256()) == 0) fail("X509_sign " + r.common_name);
    return cert;
}

inline std::string bio_text(BIO* bio) {
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio, &data);
    return std::string(data, static_cast<std::size_t>(size));
}

inline std::string certificate_pem(X509* cert) {
    bio_ptr bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) fail("PEM_write_bio_X509");
    return bio_text(bio.get());
}

inline std::string private_key_pem(EVP_PKEY* key) {
    bio_ptr bio(BIO_new(BIO_s_mem()));
    if (!bio ||
        PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
        fail("PEM_write_bio_PrivateKey");
    return bio_text(bio.get());
}

// Writes `text` to `path`, readable by this user only when it is a private key.
inline pem_file write_pem(const std::filesystem::path& path, std::string text, bool secret) {
    {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out << text;
        if (!out.flush()) throw std::runtime_error("tls test certificates: write " + path.string());
    }
    if (secret)
        std::filesystem::permissions(path, std::filesystem::perms::owner_read |
                                               std::filesystem::perms::owner_write);
    return {path, std::move(text)};
}

}  // namespace tls_certs_detail

// Makes every certificate in a new directory under $TMPDIR (or /tmp); removes it on
// destruction. Throws std::runtime_error with OpenSSL's reason if anything fails.
class tls_test_certificates {
public:
    tls_test_certificates() {
        const std::filesystem::path base = std::getenv("TMPDIR") != nullptr
                                               ? std::filesystem::path(std::getenv("TMPDIR"))
                                               : std::filesystem::path("/tmp");
        std::string pattern = (base / "rill-tls-test-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr)
            throw std::system_error(errno, std::generic_category(),
                                    "tls test certificates: mkdtemp " + pattern);
        directory = pattern;
        try {
            make_all();
        } catch (...) {
            remove_directory();
            throw;
        }
    }
    tls_test_certificates(const tls_test_certificates&) = delete;
    tls_test_certificates& operator=(const tls_test_certificates&) = delete;
    ~tls_test_certificates() { remove_directory(); }

    std::filesystem::path directory;
    pem_file ca;
    certificate_and_key server;
    certificate_and_key wrong_host;
    certificate_and_key expired;
    certificate_and_key self_signed;
    certificate_and_key client;

private:
    void make_all() {
        namespace d = tls_certs_detail;
        using std::chrono::seconds;
        const long skew =
            std::chrono::duration_cast<seconds>(tls_test_clock_skew_allowance).count();
        const long lifetime =
            std::chrono::duration_cast<seconds>(tls_test_certificate_lifetime).count();
        const long day = 24 * 60 * 60;
        const std::string localhost_names = "DNS:localhost,IP:127.0.0.1,IP:::1";

        d::key_ptr ca_key = d::make_p256_key();
        d::x509_ptr ca_cert = d::make_certificate({.common_name = "rill test CA",
                                                   .is_ca = true,
                                                   .not_before_seconds = -skew,
                                                   .not_after_seconds = lifetime,
                                                   .serial = 1},
                                                  ca_key.get(), nullptr, ca_key.get());
        ca = d::write_pem(directory / "ca.pem", d::certificate_pem(ca_cert.get()), false);

        const auto signed_by_ca = [&](const std::string& file, d::certificate_request r) {
            d::key_ptr key = d::make_p256_key();
            d::x509_ptr cert = d::make_certificate(r, key.get(), ca_cert.get(), ca_key.get());
            return certificate_and_key{
                d::write_pem(directory / (file + ".pem"), d::certificate_pem(cert.get()), false),
                d::write_pem(directory / (file + ".key"), d::private_key_pem(key.get()), true)};
        };
        server = signed_by_ca("server", {.common_name = "localhost",
                                         .subject_alt_names = localhost_names,
                                         .extended_key_usage = "serverAuth",
                                         .not_before_seconds = -skew,
                                         .not_after_seconds = lifetime,
                                         .serial = 2});
        wrong_host = signed_by_ca("wrong-host", {.common_name = "wrong-host.example",
                                                 .subject_alt_names = "DNS:wrong-host.example",
                                                 .extended_key_usage = "serverAuth",
                                                 .not_before_seconds = -skew,
                                                 .not_after_seconds = lifetime,
                                                 .serial = 3});
        expired = signed_by_ca("expired", {.common_name = "localhost",
                                           .subject_alt_names = localhost_names,
                                           .extended_key_usage = "serverAuth",
                                           .not_before_seconds = -2 * day,
                                           .not_after_seconds = -day,
                                           .serial = 4});
        client = signed_by_ca("client", {.common_name = "rill-test-client",
                                         .extended_key_usage = "clientAuth",
                                         .not_before_seconds = -skew,
                                         .not_after_seconds = lifetime,
                                         .serial = 5});

        d::key_ptr own_key = d::make_p256_key();
        d::x509_ptr own_cert = d::make_certificate({.common_name = "localhost",
                                                    .subject_alt_names = localhost_names,
                                                    .extended_key_usage = "serverAuth",
                                                    .not_before_seconds = -skew,
                                                    .not_after_seconds = lifetime,
                                                    .serial = 6},
                                                   own_key.get(), nullptr, own_key.get());
        self_signed = {
            d::write_pem(directory / "self-signed.pem", d::certificate_pem(own_cert.get()), false),
            d::write_pem(directory / "self-signed.key", d::private_key_pem(own_key.get()), true)};
    }

    void remove_directory() {
        if (directory.empty()) return;
        std::error_code ignored;
        std::filesystem::remove_all(directory, ignored);
    }
};

}  // namespace rill_test
