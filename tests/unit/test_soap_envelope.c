/*
 * test_soap_envelope.c — unit tests for transforms/soap_envelope.c and the
 * hardening of transforms/xml_safe.c.
 *
 * Attacks (XXE by file and http, billion laughs, DTDs, deep nesting, huge
 * input) must be refused quickly with a precise message; requests in the
 * shapes real clients send (python zeep, SoapUI, .NET WCF) must parse; wrap,
 * fault and response helpers are checked on exact output and round trips.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libxml/parser.h>

#include "soap_envelope.h"
#include "xml_safe.h"

#define S11      "http://schemas.xmlsoap.org/soap/envelope/"
#define S12      "http://www.w3.org/2003/05/soap-envelope"
#define WSSE     "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
#define XML_DECL "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Parses with xml_parse_safe, expects refusal with exactly `want`, in < 0.2 s. */
static void expect_refused(const char *xml, size_t len, const struct xml_limits *lim,
                           const char *want)
{
    char err[512] = "";
    double t0 = now();
    xmlDocPtr doc = xml_parse_safe(xml, len, lim, err, sizeof(err));
    double took = now() - t0;
    if (doc) {
        xmlFreeDoc(doc);
        fail_msg("accepted: %.80s", xml);
    }
    if (strcmp(err, want) != 0)
        fail_msg("want: %s\ngot:  %s", want, err);
    if (took > 0.2)
        fail_msg("refusal took %.3f s", took);
}

/* ---- xml_safe ------------------------------------------------------------ */

static void test_xxe_file(void **state)
{
    const char *xml = "<?xml version=\"1.0\"?>\n"
                      "<!DOCTYPE foo [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\n"
                      "<soap:Envelope xmlns:soap=\"" S11 "\"><soap:Body><op>&xxe;</op>"
                      "</soap:Body></soap:Envelope>";
    expect_refused(xml, strlen(xml), NULL,
                   "line 2, column 15: document type declaration (<!DOCTYPE foo>) not allowed: "
                   "SOAP forbids DTDs and entity declarations");
    /* and through the SOAP entry point, with the same message */
    struct soap_request req;
    char err[512];
    assert_int_equal(soap_request_parse(xml, strlen(xml), "text/xml", NULL, &req, err, sizeof(err)),
                     SOAP_ERR_MALFORMED);
    assert_non_null(strstr(err, "DOCTYPE foo"));
    assert_null(strstr(err, "root:"));
    assert_null(req.doc);
}

static void test_xxe_http_and_external_dtd(void **state)
{
    const char *a = "<!DOCTYPE r [<!ENTITY % ext SYSTEM \"http://127.0.0.1:9/evil.dtd\"> %ext;]>"
                    "<r>&exfil;</r>";
    expect_refused(a, strlen(a), NULL,
                   "line 1, column 13: document type declaration (<!DOCTYPE r>) not allowed: "
                   "SOAP forbids DTDs and entity declarations");
    const char *b = "<!DOCTYPE r SYSTEM \"http://127.0.0.1:9/evil.dtd\"><r/>";
    expect_refused(b, strlen(b), NULL,
                   "line 1, column 49: document type declaration (<!DOCTYPE r>) not allowed: "
                   "SOAP forbids DTDs and entity declarations");
    /* an entity reference without any DTD is simply undefined */
    const char *c = "<r>&xxe;</r>";
    expect_refused(c, strlen(c), NULL, "line 1, column 9: Entity 'xxe' not defined");
}

static void test_billion_laughs(void **state)
{
    const char *xml =
        "<?xml version=\"1.0\"?>\n"
        "<!DOCTYPE lolz [\n"
        " <!ENTITY lol \"lol\">\n"
        " <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
        " <!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">\n"
        " <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
        " <!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n"
        " <!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">\n"
        " <!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">\n"
        " <!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">\n"
        " <!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">\n"
        " <!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">\n"
        "]>\n"
        "<lolz>&lol9;</lolz>";
    expect_refused(xml, strlen(xml), NULL,
                   "line 2, column 16: document type declaration (<!DOCTYPE lolz>) not allowed: "
                   "SOAP forbids DTDs and entity declarations");
}

static void test_plain_dtd(void **state)
{
    const char *xml = "<!DOCTYPE Envelope><Envelope/>";
    expect_refused(xml, strlen(xml), NULL,
                   "line 1, column 19: document type declaration (<!DOCTYPE Envelope>) not "
                   "allowed: SOAP forbids DTDs and entity declarations");
}

static void test_deep_nesting(void **state)
{
    size_t n = 10000;
    char *xml = malloc(n * 7 + 1), *p = xml;
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "<a>");
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "</a>");
    expect_refused(xml, strlen(xml), NULL,
                   "line 1, column 387: elements nested deeper than the limit of 128");
    free(xml);
    struct xml_limits lim = {.max_depth = 3};
    expect_refused("<a><b><c><d/></c></b></a>", 25, &lim,
                   "line 1, column 12: elements nested deeper than the limit of 3");
    char err[256];
    xmlDocPtr doc = xml_parse_safe("<a><b><c/></b></a>", 18, &lim, err, sizeof(err));
    assert_non_null(doc);
    xmlFreeDoc(doc);
}

static void test_oversized(void **state)
{
    size_t len = XML_SAFE_DEFAULT_MAX_BYTES + 1;
    char *xml = malloc(len);
    memset(xml, ' ', len);
    memcpy(xml, "<a>", 3);
    memcpy(xml + len - 4, "</a>", 4);
    expect_refused(xml, len, NULL, "document is 10485761 bytes, over the limit of 10485760 bytes");
    struct xml_limits lim = {.max_bytes = 10};
    expect_refused("<a>hello</a>", 12, &lim, "document is 12 bytes, over the limit of 10 bytes");
    free(xml);
}

static void test_malformed_xml(void **state)
{
    expect_refused("", 0, NULL, "line 1, column 1: document is empty");
    expect_refused("<a>\n<b></a>", 11, NULL,
                   "line 2, column 8: Opening and ending tag mismatch: b line 2 and a");
    expect_refused("<a/><b/>", 8, NULL,
                   "line 1, column 5: Extra content at the end of the document");
    expect_refused("<p:a/>", 6, NULL, "line 1, column 5: Namespace prefix p on a is not defined");
    expect_refused("<a>\xff</a>", 8, NULL,
                   "line 1, column 4: Input is not proper UTF-8, indicate encoding !\n"
                   "Bytes: 0xFF 0x3C 0x2F 0x61");
}

/* libxml2 raises encoding errors without a parser context; they must reach
 * our message, never the daemon's stderr. */
static void test_encoding_errors_stay_off_stderr(void **state)
{
    FILE *capture = tmpfile();
    assert_non_null(capture);
    fflush(stderr);
    int saved = dup(2);
    assert_int_equal(dup2(fileno(capture), 2), 2);
    /* (encodings that hide markup, such as UTF-32 or ISO-2022-JP, are refused
     * before parsing: see test_xml_safe.c) */
    static const char sjis[] = "<?xml version=\"1.0\" encoding=\"Shift_JIS\"?><a>\x82\xff\xff</a>";
    static const char eucjp[] = "<?xml version=\"1.0\" encoding=\"EUC-JP\"?><a>\xa4\xff\xff</a>";
    char err1[512] = "", err2[512] = "";
    xmlDocPtr d1 = xml_parse_safe(sjis, sizeof(sjis) - 1, NULL, err1, sizeof(err1));
    xmlDocPtr d2 = xml_parse_safe(eucjp, sizeof(eucjp) - 1, NULL, err2, sizeof(err2));
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    struct stat st;
    assert_int_equal(fstat(fileno(capture), &st), 0);
    fclose(capture);
    assert_null(d1);
    assert_null(d2);
    assert_string_equal(err1, "line 1, column 41: input conversion failed due to input error, "
                              "bytes 0x82 0xFF 0xFF 0x3C");
    assert_string_equal(err2, "line 1, column 38: input conversion failed due to input error, "
                              "bytes 0xA4 0xFF 0xFF 0x3C");
    assert_int_equal(st.st_size, 0); /* nothing printed */
}

/* ---- requests ---------------------------------------------------------- */

/* What python zeep sends for a document/literal call. */
static const char zeep_11[] =
    "<?xml version='1.0' encoding='utf-8'?>\n"
    "<soap-env:Envelope xmlns:soap-env=\"" S11 "\"><soap-env:Header><wsse:Security "
    "xmlns:wsse=\"" WSSE "\"><wsse:UsernameToken><wsse:Username>crm-bot</wsse:Username>"
    "<wsse:Password Type=\"http://docs.oasis-open.org/wss/2004/01/"
    "oasis-200401-wss-username-token-profile-1.0#PasswordText\">s3cr&lt;t</wsse:Password>"
    "</wsse:UsernameToken></wsse:Security></soap-env:Header><soap-env:Body>"
    "<ns0:CreateCustomer xmlns:ns0=\"urn:crm\"><ns0:name>Ann \xC3\x85str\xC3\xB6m</ns0:name>"
    "<ns0:amount>0012.50</ns0:amount></ns0:CreateCustomer></soap-env:Body></soap-env:Envelope>";

static void test_request_zeep_11(void **state)
{
    struct soap_request req;
    char err[512];
    assert_int_equal(soap_request_parse(zeep_11, strlen(zeep_11), "text/xml; charset=utf-8", NULL,
                                        &req, err, sizeof(err)),
                     0);
    assert_int_equal(req.version, SOAP_1_1);
    assert_string_equal(req.operation_name, "CreateCustomer");
    assert_string_equal(req.operation_ns, "urn:crm");
    assert_null(req.action);
    assert_string_equal(req.username, "crm-bot");
    assert_string_equal(req.password, "s3cr<t");
    assert_false(req.password_digest);
    assert_non_null(req.header);
    size_t len;
    char *xml = xml_node_serialize(req.operation, &len);
    assert_string_equal(xml, "<ns0:CreateCustomer xmlns:ns0=\"urn:crm\"><ns0:name>Ann "
                             "\xC3\x85str\xC3\xB6m</ns0:name><ns0:amount>0012.50</ns0:amount>"
                             "</ns0:CreateCustomer>");
    free(xml);
    soap_request_free(&req);
    assert_null(req.doc);
    soap_request_free(&req); /* twice is harmless */
}

/* SoapUI: namespaces declared on the Envelope, an empty Header, pretty printed. */
static void test_request_soapui_11(void **state)
{
    const char *xml = "<soapenv:Envelope xmlns:soapenv=\"" S11 "\" xmlns:urn=\"urn:crm\">\n"
                      "   <soapenv:Header/>\n"
                      "   <soapenv:Body>\n"
                      "      <urn:GetCustomer>\n"
                      "         <urn:id>42</urn:id>\n"
                      "      </urn:GetCustomer>\n"
                      "   </soapenv:Body>\n"
                      "</soapenv:Envelope>";
    struct soap_request req;
    char err[512];
    assert_int_equal(soap_request_parse(xml, strlen(xml), NULL, NULL, &req, err, sizeof(err)), 0);
    assert_int_equal(req.version, SOAP_1_1);
    assert_string_equal(req.operation_name, "GetCustomer");
    assert_null(req.username);
    char *op = xml_node_serialize(req.operation, NULL);
    assert_string_equal(op, "<urn:GetCustomer xmlns:urn=\"urn:crm\">\n"
                            "         <urn:id>42</urn:id>\n"
                            "      </urn:GetCustomer>");
    free(op);
    soap_request_free(&req);
}

/* .NET WCF (wsHttpBinding-like): SOAP 1.2, action in the Content-Type, WS-Addressing. */
static void test_request_wcf_12(void **state)
{
    const char *xml =
        "<s:Envelope xmlns:s=\"" S12 "\" xmlns:a=\"http://www.w3.org/2005/08/addressing\">"
        "<s:Header><a:Action s:mustUnderstand=\"1\">http://tempuri.org/IService/GetData"
        "</a:Action><a:To s:mustUnderstand=\"1\">http://127.0.0.1:8082/ws</a:To></s:Header>"
        "<s:Body><GetData xmlns=\"http://tempuri.org/\"><value>5</value></GetData></s:Body>"
        "</s:Envelope>";
    struct soap_request req;
    char err[512];
    assert_int_equal(soap_request_parse(xml, strlen(xml),
                                        "application/soap+xml; charset=utf-8; "
                                        "action=\"http://tempuri.org/IService/GetData\"",
                                        NULL, &req, err, sizeof(err)),
                     0);
    assert_int_equal(req.version, SOAP_1_2);
    assert_string_equal(req.operation_name, "GetData");
    assert_string_equal(req.operation_ns, "http://tempuri.org/");
    assert_string_equal(req.action, "http://tempuri.org/IService/GetData");
    soap_request_free(&req);
    /* unquoted action, odd case and spacing */
    assert_int_equal(soap_request_parse(xml, strlen(xml),
                                        "Application/SOAP+XML ;ACTION=urn:Get ; charset=utf-8",
                                        NULL, &req, err, sizeof(err)),
                     0);
    assert_string_equal(req.action, "urn:Get");
    soap_request_free(&req);
}

static void test_request_password_digest(void **state)
{
    const char *xml = "<e:Envelope xmlns:e=\"" S12 "\"><e:Header><w:Security xmlns:w=\"" WSSE
                      "\"><w:UsernameToken><w:Username>u</w:Username><w:Password "
                      "Type=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-"
                      "token-profile-1.0#PasswordDigest\">ZGlnZXN0</w:Password></w:UsernameToken>"
                      "</w:Security></e:Header><e:Body><op/></e:Body></e:Envelope>";
    struct soap_request req;
    char err[512];
    assert_int_equal(
        soap_request_parse(xml, strlen(xml), "application/soap+xml", NULL, &req, err, sizeof(err)),
        0);
    assert_string_equal(req.username, "u");
    assert_string_equal(req.password, "ZGlnZXN0");
    assert_true(req.password_digest);
    assert_null(req.operation_ns);
    soap_request_free(&req);
}

static void expect_request_error(const char *xml, const char *content_type, int want_rc,
                                 enum soap_version want_version, const char *want)
{
    struct soap_request req;
    char err[512] = "";
    int rc = soap_request_parse(xml, strlen(xml), content_type, NULL, &req, err, sizeof(err));
    if (rc == 0)
        soap_request_free(&req);
    assert_int_equal(rc, want_rc);
    if (strcmp(err, want) != 0)
        fail_msg("want: %s\ngot:  %s", want, err);
    assert_int_equal(req.version, want_version);
    assert_null(req.doc);
    assert_null(req.action);
}

static void test_request_errors(void **state)
{
    const char *env12 = "<e:Envelope xmlns:e=\"" S12 "\"><e:Body><op/></e:Body></e:Envelope>";
    expect_request_error(env12, "application/json", SOAP_ERR_CONTENT_TYPE, SOAP_1_1,
                         "unsupported content type \"application/json\": SOAP 1.1 is sent as "
                         "text/xml, SOAP 1.2 as application/soap+xml");
    expect_request_error(env12, "text/xml; charset=utf-8", SOAP_ERR_CONTENT_TYPE, SOAP_1_2,
                         "SOAP 1.2 envelope sent with Content-Type text/xml (SOAP 1.1): use "
                         "application/soap+xml");
    expect_request_error("<Envelope xmlns=\"" S11 "\"><Body><op/></Body></Envelope>",
                         "application/soap+xml; action=x", SOAP_ERR_CONTENT_TYPE, SOAP_1_1,
                         "SOAP 1.1 envelope sent with Content-Type application/soap+xml (SOAP "
                         "1.2): use text/xml");
    expect_request_error("<order><id>1</id></order>", "text/xml", SOAP_ERR_MALFORMED, SOAP_1_1,
                         "line 1: root element is <order>, not a SOAP Envelope");
    expect_request_error("<Envelope xmlns=\"urn:wrong\"><Body/></Envelope>", "text/xml",
                         SOAP_ERR_MALFORMED, SOAP_1_1,
                         "line 1: Envelope namespace is \"urn:wrong\", neither SOAP 1.1 (" S11
                         ") nor SOAP 1.2 (" S12 ")");
    expect_request_error("<Envelope><Body/></Envelope>", NULL, SOAP_ERR_MALFORMED, SOAP_1_1,
                         "line 1: Envelope namespace is \"(none)\", neither SOAP 1.1 (" S11
                         ") nor SOAP 1.2 (" S12 ")");
    expect_request_error("<s:Envelope xmlns:s=\"" S11 "\">\n<s:Header/>\n</s:Envelope>", "text/xml",
                         SOAP_ERR_MALFORMED, SOAP_1_1, "line 1: Envelope has no Body");
    expect_request_error("<s:Envelope xmlns:s=\"" S11 "\">\n<s:Body/></s:Envelope>", "text/xml",
                         SOAP_ERR_MALFORMED, SOAP_1_1,
                         "line 2: Body is empty: its first element names the operation to call");
    expect_request_error("<s:Envelope xmlns:s=\"" S11 "\"><Body xmlns=\"urn:x\"><op/></Body>"
                         "</s:Envelope>",
                         "text/xml", SOAP_ERR_MALFORMED, SOAP_1_1,
                         "line 1: expected the Envelope's Body, found <Body> in another "
                         "namespace than the Envelope's");
    expect_request_error("<s:Envelope xmlns:s=\"" S11 "\"><s:Extra/><s:Body><op/></s:Body>"
                         "</s:Envelope>",
                         "text/xml", SOAP_ERR_MALFORMED, SOAP_1_1,
                         "line 1: expected the Envelope's Body, found <s:Extra>");
    expect_request_error("<s:Envelope xmlns:s=\"" S11 "\"><s:Body>\n<s:Fault><faultcode>"
                         "s:Client</faultcode></s:Fault></s:Body></s:Envelope>",
                         "text/xml", SOAP_ERR_MALFORMED, SOAP_1_1,
                         "line 2: Body holds a Fault, not a request");
    expect_request_error("<s:Envelope xmlns:s=\"" S11 "\"><s:Header><w:Security xmlns:w=\"" WSSE
                         "\"><w:UsernameToken><w:Password>p</w:Password></w:UsernameToken>"
                         "</w:Security></s:Header><s:Body><op/></s:Body></s:Envelope>",
                         "text/xml", SOAP_ERR_MALFORMED, SOAP_1_1,
                         "line 1: wsse:UsernameToken has no wsse:Username");
    expect_request_error(
        "<s:Envelope xmlns:s=\"" S12 "\"><s:Body><op></s:Body></s:Envelope>",
        "application/soap+xml", SOAP_ERR_MALFORMED, SOAP_1_2,
        "line 1, column 84: Opening and ending tag mismatch: op line 1 and s:Body");
}

/* ---- wrapping ------------------------------------------------------------ */

static void test_wrap_11(void **state)
{
    const char *body = "<ns0:Op xmlns:ns0=\"urn:x\"><ns0:a>1 &amp; 2</ns0:a></ns0:Op>";
    char err[512];
    size_t len;
    char *env =
        soap_envelope_wrap(SOAP_1_1, body, strlen(body), NULL, NULL, NULL, &len, err, sizeof(err));
    assert_non_null(env);
    assert_string_equal(env, XML_DECL "<soap:Envelope xmlns:soap=\"" S11 "\"><soap:Body>"
                                      "<ns0:Op xmlns:ns0=\"urn:x\"><ns0:a>1 &amp; 2</ns0:a>"
                                      "</ns0:Op></soap:Body></soap:Envelope>\n");
    assert_int_equal(len, strlen(env));
    free(env);
}

static void test_wrap_12_security_round_trip(void **state)
{
    /* the fragment binds "soap" to its own namespace: still a valid envelope */
    const char *body = "<soap:Op xmlns:soap=\"urn:mine\"><soap:v>\xE2\x82\xAC</soap:v></soap:Op>";
    char err[512];
    size_t len;
    char *env = soap_envelope_wrap(SOAP_1_2, body, strlen(body), "u&1", "p<&>\"'", NULL, &len, err,
                                   sizeof(err));
    assert_non_null(env);
    assert_string_equal(env, XML_DECL
                        "<soap:Envelope xmlns:soap=\"" S12 "\"><soap:Header><wsse:Security "
                        "xmlns:wsse=\"" WSSE "\"><wsse:UsernameToken><wsse:Username>u&amp;1"
                        "</wsse:Username><wsse:Password Type=\"" SOAP_PASSWORD_TEXT "\">"
                        "p&lt;&amp;&gt;\"'</wsse:Password></wsse:UsernameToken></wsse:Security>"
                        "</soap:Header><soap:Body><soap:Op xmlns:soap=\"urn:mine\"><soap:v>"
                        "\xE2\x82\xAC</soap:v></soap:Op></soap:Body></soap:Envelope>\n");
    struct soap_request req;
    assert_int_equal(
        soap_request_parse(env, len, "application/soap+xml", NULL, &req, err, sizeof(err)), 0);
    assert_string_equal(req.operation_name, "Op");
    assert_string_equal(req.operation_ns, "urn:mine");
    assert_string_equal(req.username, "u&1");
    assert_string_equal(req.password, "p<&>\"'");
    soap_request_free(&req);
    free(env);
    /* username without password: no Password element */
    env = soap_envelope_wrap(SOAP_1_1, "<a/>", 4, "u", NULL, NULL, NULL, err, sizeof(err));
    assert_non_null(strstr(env, "<wsse:UsernameToken><wsse:Username>u</wsse:Username>"
                                "</wsse:UsernameToken>"));
    free(env);
}

static void test_wrap_errors(void **state)
{
    char err[512];
    assert_null(
        soap_envelope_wrap(SOAP_1_1, "<a/><b/>", 8, NULL, NULL, NULL, NULL, err, sizeof(err)));
    assert_string_equal(err, "body is not one well-formed XML element: line 1, column 5: Extra "
                             "content at the end of the document");
    assert_null(
        soap_envelope_wrap(SOAP_1_1, "just text", 9, NULL, NULL, NULL, NULL, err, sizeof(err)));
    assert_string_equal(err, "body is not one well-formed XML element: line 1, column 1: Start "
                             "tag expected, '<' not found");
    const char *dtd = "<!DOCTYPE a [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><a>&x;</a>";
    assert_null(
        soap_envelope_wrap(SOAP_1_1, dtd, strlen(dtd), NULL, NULL, NULL, NULL, err, sizeof(err)));
    assert_string_equal(err, "body is not one well-formed XML element: line 1, column 13: "
                             "document type declaration (<!DOCTYPE a>) not allowed: SOAP forbids "
                             "DTDs and entity declarations");
    assert_null(
        soap_envelope_wrap(SOAP_1_1, "<a/>", 4, "bad\x01", "p", NULL, NULL, err, sizeof(err)));
    assert_string_equal(err, "username is not UTF-8 text XML can carry");
    struct xml_limits lim = {.max_bytes = 3};
    assert_null(soap_envelope_wrap(SOAP_1_1, "<a/>", 4, NULL, NULL, &lim, NULL, err, sizeof(err)));
    assert_string_equal(err, "body is not one well-formed XML element: document is 4 bytes, over "
                             "the limit of 3 bytes");
}

/* ---- faults -------------------------------------------------------------- */

static void test_fault_build(void **state)
{
    size_t len;
    char *f = soap_fault_build(SOAP_1_1, true, "bad <input> & \"x\"", &len);
    assert_string_equal(f, XML_DECL "<soap:Envelope xmlns:soap=\"" S11 "\"><soap:Body><soap:Fault>"
                                    "<faultcode>soap:Client</faultcode><faultstring>bad &lt;input"
                                    "&gt; &amp; \"x\"</faultstring></soap:Fault></soap:Body>"
                                    "</soap:Envelope>\n");
    assert_int_equal(len, strlen(f));
    free(f);
    f = soap_fault_build(SOAP_1_2, false, "broker unavailable", NULL);
    assert_string_equal(f, XML_DECL "<soap:Envelope xmlns:soap=\"" S12 "\"><soap:Body><soap:Fault>"
                                    "<soap:Code><soap:Value>soap:Receiver</soap:Value></soap:Code>"
                                    "<soap:Reason><soap:Text xml:lang=\"en\">broker unavailable"
                                    "</soap:Text></soap:Reason></soap:Fault></soap:Body>"
                                    "</soap:Envelope>\n");
    free(f);
    /* bytes XML cannot carry become U+FFFD; NULL reason is empty */
    f = soap_fault_build(SOAP_1_2, true,
                         "a\x01"
                         "b\xFF"
                         "c",
                         NULL);
    assert_non_null(strstr(f, "<soap:Value>soap:Sender</soap:Value>"));
    assert_non_null(strstr(f, ">a\xEF\xBF\xBD"
                              "b\xEF\xBF\xBD"
                              "c</soap:Text>"));
    free(f);
    f = soap_fault_build(SOAP_1_1, false, NULL, NULL);
    assert_non_null(strstr(f, "<faultcode>soap:Server</faultcode><faultstring></faultstring>"));
    free(f);
}

static void test_fault_round_trip(void **state)
{
    for (int v = SOAP_1_1; v <= SOAP_1_2; v++) {
        for (int client = 0; client <= 1; client++) {
            size_t len;
            char *f = soap_fault_build(v, client, "why <it> failed", &len);
            struct soap_response resp;
            char err[512];
            assert_int_equal(soap_response_parse(f, len, NULL, &resp, err, sizeof(err)), 0);
            assert_true(resp.fault);
            assert_int_equal(resp.version, v);
            assert_int_equal(resp.client_fault, client);
            assert_string_equal(resp.fault_reason, "why <it> failed");
            assert_null(resp.body);
            assert_null(resp.content);
            soap_response_free(&resp);
            free(f);
        }
    }
}

/* ---- responses ----------------------------------------------------------- */

static void test_response_body(void **state)
{
    const char *xml = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
                      "<soap:Envelope xmlns:soap=\"" S11 "\" xmlns:tns=\"urn:crm\" "
                      "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n"
                      "  <soap:Body>\n"
                      "    <tns:UpdateCustomerResponse><tns:result xsi:type=\"tns:Ok\">done"
                      "</tns:result></tns:UpdateCustomerResponse>\n"
                      "  </soap:Body>\n"
                      "</soap:Envelope>\n";
    struct soap_response resp;
    char err[512];
    assert_int_equal(soap_response_parse(xml, strlen(xml), NULL, &resp, err, sizeof(err)), 0);
    assert_false(resp.fault);
    assert_int_equal(resp.version, SOAP_1_1);
    assert_non_null(resp.content);
    assert_string_equal(resp.body, "<tns:UpdateCustomerResponse xmlns:tns=\"urn:crm\" "
                                   "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">"
                                   "<tns:result xsi:type=\"tns:Ok\">done</tns:result>"
                                   "</tns:UpdateCustomerResponse>");
    assert_int_equal(resp.body_len, strlen(resp.body));
    soap_response_free(&resp);
    /* one-way operations answer with an empty Body */
    const char *empty = "<e:Envelope xmlns:e=\"" S12 "\"><e:Body/></e:Envelope>";
    assert_int_equal(soap_response_parse(empty, strlen(empty), NULL, &resp, err, sizeof(err)), 0);
    assert_false(resp.fault);
    assert_null(resp.body);
    assert_null(resp.content);
    soap_response_free(&resp);
}

static void expect_fault(const char *fault_xml, enum soap_version v, bool client, const char *code,
                         const char *reason)
{
    char xml[2048];
    snprintf(xml, sizeof(xml),
             "<env:Envelope xmlns:env=\"%s\"><env:Body>%s</env:Body></env:Envelope>",
             v == SOAP_1_2 ? S12 : S11, fault_xml);
    struct soap_response resp;
    char err[512];
    assert_int_equal(soap_response_parse(xml, strlen(xml), NULL, &resp, err, sizeof(err)), 0);
    assert_true(resp.fault);
    if (resp.client_fault != client)
        fail_msg("%s: want client_fault=%d", fault_xml, client);
    if (code)
        assert_string_equal(resp.fault_code, code);
    else
        assert_null(resp.fault_code);
    if (reason)
        assert_string_equal(resp.fault_reason, reason);
    else
        assert_null(resp.fault_reason);
    soap_response_free(&resp);
}

static void test_response_fault_classes(void **state)
{
    expect_fault("<env:Fault><faultcode>env:Server</faultcode><faultstring> db down "
                 "</faultstring></env:Fault>",
                 SOAP_1_1, false, "env:Server", "db down");
    expect_fault("<env:Fault><faultcode>\n env:Client.Authentication\n</faultcode>"
                 "<faultstring>bad password</faultstring></env:Fault>",
                 SOAP_1_1, true, "env:Client.Authentication", "bad password");
    /* qualified children and an undeclared prefix: still read, by local name */
    expect_fault("<env:Fault><env:faultcode>soap:Client</env:faultcode></env:Fault>", SOAP_1_1,
                 true, "soap:Client", NULL);
    expect_fault("<env:Fault><faultcode>env:VersionMismatch</faultcode></env:Fault>", SOAP_1_1,
                 true, "env:VersionMismatch", NULL);
    /* an application-namespace code says nothing about whose fault it is: retry */
    expect_fault("<env:Fault><faultcode xmlns:app=\"urn:app\">app:Client</faultcode>"
                 "</env:Fault>",
                 SOAP_1_1, false, "app:Client", NULL);
    expect_fault("<env:Fault/>", SOAP_1_1, false, NULL, NULL);
    expect_fault("<env:Fault><env:Code><env:Value>env:Sender</env:Value><env:Subcode>"
                 "<env:Value xmlns:m=\"urn:m\">m:Invalid</env:Value></env:Subcode></env:Code>"
                 "<env:Reason><env:Text xml:lang=\"en\">bad id</env:Text><env:Text "
                 "xml:lang=\"de\">falsche ID</env:Text></env:Reason></env:Fault>",
                 SOAP_1_2, true, "env:Sender", "bad id");
    expect_fault("<env:Fault><env:Code><env:Value>env:Receiver</env:Value></env:Code>"
                 "<env:Reason><env:Text xml:lang=\"en\">later</env:Text></env:Reason></env:Fault>",
                 SOAP_1_2, false, "env:Receiver", "later");
    expect_fault("<env:Fault><env:Code><env:Value>env:MustUnderstand</env:Value></env:Code>"
                 "</env:Fault>",
                 SOAP_1_2, true, "env:MustUnderstand", NULL);
}

static void test_response_errors(void **state)
{
    struct soap_response resp;
    char err[512];
    assert_int_equal(soap_response_parse("<html><body>502 Bad Gateway</body></html>", 41, NULL,
                                         &resp, err, sizeof(err)),
                     -1);
    assert_string_equal(err, "line 1: root element is <html>, not a SOAP Envelope");
    assert_null(resp.doc);
    assert_int_equal(soap_response_parse("", 0, NULL, &resp, err, sizeof(err)), -1);
    assert_string_equal(err, "line 1, column 1: document is empty");
    const char *nobody = "<e:Envelope xmlns:e=\"" S11 "\"><e:Header/></e:Envelope>";
    assert_int_equal(soap_response_parse(nobody, strlen(nobody), NULL, &resp, err, sizeof(err)),
                     -1);
    assert_string_equal(err, "line 1: Envelope has no Body");
}

/* ---- threads ------------------------------------------------------------ */

/* Each thread alternates good and bad documents and checks its own messages:
 * errors are captured per parser context, so nothing may leak between threads. */
static void *parse_many(void *arg)
{
    const char *bad_root = "<order/>";
    char bad_line[64];
    int id = (int)(intptr_t)arg;
    snprintf(bad_line, sizeof(bad_line), "<a>%*s<b></a>", id, "");
    char want[128];
    snprintf(want, sizeof(want),
             "line 1, column %d: Opening and ending tag mismatch: b line 1 "
             "and a",
             11 + id);
    for (int i = 0; i < 300; i++) {
        struct soap_request req;
        char err[512];
        if (soap_request_parse(zeep_11, strlen(zeep_11), "text/xml", NULL, &req, err,
                               sizeof(err)) != 0 ||
            strcmp(req.username, "crm-bot") != 0)
            return "good request refused";
        soap_request_free(&req);
        if (soap_request_parse(bad_root, strlen(bad_root), "text/xml", NULL, &req, err,
                               sizeof(err)) != SOAP_ERR_MALFORMED ||
            strcmp(err, "line 1: root element is <order>, not a SOAP Envelope") != 0)
            return "wrong message for a bad root";
        xmlDocPtr doc = xml_parse_safe(bad_line, strlen(bad_line), NULL, err, sizeof(err));
        if (doc || strcmp(err, want) != 0)
            return "wrong message for a tag mismatch";
    }
    return NULL;
}

static void test_concurrent_parsing(void **state)
{
    pthread_t threads[6];
    for (intptr_t i = 0; i < 6; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, parse_many, (void *)i), 0);
    void *results[6];
    for (int i = 0; i < 6; i++) /* join all before any assertion longjmps away */
        assert_int_equal(pthread_join(threads[i], &results[i]), 0);
    for (int i = 0; i < 6; i++)
        if (results[i])
            fail_msg("thread %d: %s", i, (const char *)results[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xxe_file),
        cmocka_unit_test(test_xxe_http_and_external_dtd),
        cmocka_unit_test(test_billion_laughs),
        cmocka_unit_test(test_plain_dtd),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_malformed_xml),
        cmocka_unit_test(test_encoding_errors_stay_off_stderr),
        cmocka_unit_test(test_request_zeep_11),
        cmocka_unit_test(test_request_soapui_11),
        cmocka_unit_test(test_request_wcf_12),
        cmocka_unit_test(test_request_password_digest),
        cmocka_unit_test(test_request_errors),
        cmocka_unit_test(test_wrap_11),
        cmocka_unit_test(test_wrap_12_security_round_trip),
        cmocka_unit_test(test_wrap_errors),
        cmocka_unit_test(test_fault_build),
        cmocka_unit_test(test_fault_round_trip),
        cmocka_unit_test(test_response_body),
        cmocka_unit_test(test_response_fault_classes),
        cmocka_unit_test(test_response_errors),
        cmocka_unit_test(test_concurrent_parsing),
    };
    xmlInitParser();
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    xmlCleanupParser();
    return rc;
}
