// The certificates the TLS tests make at run time (tests/support/tls_certs.hpp) are what their
// names say: OpenSSL's own verifier accepts the server and client chains against the CA and
// refuses the wrong host name, the expired and the self-signed certificate for the reason the
// TLS tests expect to see.
#include <sys/stat.h>

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>

#include "support/files.hpp"
#include "support/tls_certs.hpp"

namespace {

using rill_test::tls_test_certificates;

struct x509_free {
    void operator()(X509* x) const { X509_free(x); }
};
using x509_ptr = std::unique_ptr<X509, x509_free>;

x509_ptr parse_certificate(const std::string& pem) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), int(pem.size())),
                                                  BIO_free);
    return x509_ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

struct verification {
    bool ok = false;
    int error = X509_V_OK;
};

// Verifies `leaf` against `ca` alone (no system store), for `purpose`, checking the host name
// or IP address when one is given.
verification verify(const std::string& ca_pem, const std::string& leaf_pem,
                    int purpose = X509_PURPOSE_SSL_SERVER, const std::string& host = "",
                    const std::string& ip = "") {
    x509_ptr ca = parse_certificate(ca_pem);
    x509_ptr leaf = parse_certificate(leaf_pem);
    if (!ca || !leaf) return {false, -1};
    std::unique_ptr<X509_STORE, decltype(&X509_STORE_free)> store(X509_STORE_new(),
                                                                  X509_STORE_free);
    X509_STORE_add_cert(store.get(), ca.get());
    std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> ctx(X509_STORE_CTX_new(),
                                                                        X509_STORE_CTX_free);
    X509_STORE_CTX_init(ctx.get(), store.get(), leaf.get(), nullptr);
    X509_STORE_CTX_set_purpose(ctx.get(), purpose);
    X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
    if (!host.empty()) X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
    if (!ip.empty()) X509_VERIFY_PARAM_set1_ip_asc(param, ip.c_str());
    verification v;
    v.ok = X509_verify_cert(ctx.get()) == 1;
    v.error = X509_STORE_CTX_get_error(ctx.get());
    return v;
}

TEST(TlsTestCertificates, ServerChainVerifiesForEveryLoopbackName) {
    tls_test_certificates certs;
    for (const auto& [host, ip] :
         {std::pair<std::string, std::string>{"localhost", ""}, {"", "127.0.0.1"}, {"", "::1"}}) {
        SCOPED_TRACE(host + ip);
        const auto v =
            verify(certs.ca.pem, certs.server.certificate.pem, X509_PURPOSE_SSL_SERVER, host, ip);
        EXPECT_TRUE(v.ok) << X509_verify_cert_error_string(v.error);
    }
    // Another name than the certificate's is refused.
    const auto other =
        verify(certs.ca.pem, certs.server.certificate.pem, X509_PURPOSE_SSL_SERVER, "example.org");
    EXPECT_FALSE(other.ok);
    EXPECT_EQ(other.error, X509_V_ERR_HOSTNAME_MISMATCH);
}

TEST(TlsTestCertificates, EachBadCertificateFailsForItsOwnReason) {
    tls_test_certificates certs;
    const auto wrong = verify(certs.ca.pem, certs.wrong_host.certificate.pem,
                              X509_PURPOSE_SSL_SERVER, "localhost");
    EXPECT_FALSE(wrong.ok);
    EXPECT_EQ(wrong.error, X509_V_ERR_HOSTNAME_MISMATCH);
    // Without a name to check, the wrong-host certificate's chain itself is sound.
    EXPECT_TRUE(verify(certs.ca.pem, certs.wrong_host.certificate.pem).ok);

    const auto expired =
        verify(certs.ca.pem, certs.expired.certificate.pem, X509_PURPOSE_SSL_SERVER, "localhost");
    EXPECT_FALSE(expired.ok);
    EXPECT_EQ(expired.error, X509_V_ERR_CERT_HAS_EXPIRED);

    const auto self = verify(certs.ca.pem, certs.self_signed.certificate.pem,
                             X509_PURPOSE_SSL_SERVER, "localhost");
    EXPECT_FALSE(self.ok);
    EXPECT_EQ(self.error, X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT);
}

TEST(TlsTestCertificates, ClientCertificateIsForClientsOnly) {
    tls_test_certificates certs;
    const auto as_client =
        verify(certs.ca.pem, certs.client.certificate.pem, X509_PURPOSE_SSL_CLIENT);
    EXPECT_TRUE(as_client.ok) << X509_verify_cert_error_string(as_client.error);
    const auto as_server =
        verify(certs.ca.pem, certs.client.certificate.pem, X509_PURPOSE_SSL_SERVER);
    EXPECT_FALSE(as_server.ok);
    EXPECT_EQ(as_server.error, X509_V_ERR_INVALID_PURPOSE);
}

TEST(TlsTestCertificates, FilesHoldThePemTextsAndKeysMatch) {
    std::filesystem::path directory;
    {
        tls_test_certificates certs;
        directory = certs.directory;
        for (const rill_test::certificate_and_key* pair :
             {&certs.server, &certs.wrong_host, &certs.expired, &certs.self_signed,
              &certs.client}) {
            SCOPED_TRACE(pair->certificate.path.string());
            EXPECT_EQ(rill_test::read_file(pair->certificate.path), pair->certificate.pem);
            EXPECT_EQ(rill_test::read_file(pair->private_key.path), pair->private_key.pem);
            EXPECT_TRUE(pair->private_key.pem.starts_with("-----BEGIN PRIVATE KEY-----"));
            struct stat st {};
            ASSERT_EQ(::stat(pair->private_key.path.c_str(), &st), 0);
            EXPECT_EQ(st.st_mode & 0777, 0600u) << "a private key is for its owner only";

            x509_ptr cert = parse_certificate(pair->certificate.pem);
            ASSERT_TRUE(cert);
            EXPECT_EQ(X509_get_version(cert.get()), X509_VERSION_3);
            std::unique_ptr<BIO, decltype(&BIO_free)> bio(
                BIO_new_mem_buf(pair->private_key.pem.data(), int(pair->private_key.pem.size())),
                BIO_free);
            std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
                PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
            ASSERT_TRUE(key);
            EXPECT_TRUE(EVP_PKEY_is_a(key.get(), "EC"));
            EXPECT_EQ(X509_check_private_key(cert.get(), key.get()), 1);
        }
        EXPECT_EQ(rill_test::read_file(certs.ca.path), certs.ca.pem);
        // Every run makes its own keys: two sets share nothing.
        tls_test_certificates other;
        EXPECT_NE(other.directory, certs.directory);
        EXPECT_NE(other.server.private_key.pem, certs.server.private_key.pem);
        EXPECT_FALSE(verify(other.ca.pem, certs.server.certificate.pem).ok);
    }
    EXPECT_FALSE(std::filesystem::exists(directory)) << "removed with its object";
}

}  // namespace
