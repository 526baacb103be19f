/*
 * test_soap_wsdl.c — unit tests for adapter/kinds/soap_wsdl.c: which
 * operations are one-way (configs/crm.wsdl, a spyne-style WSDL, rpc style),
 * wsdl_address rewriting of SOAP 1.1 and 1.2 ports, the soapAction each
 * request must carry (WS-I BP R2744/R2745), and refusals (DTD, not XML,
 * nothing to re-address, unreadable file). Run from the repository root (as
 * tests/run-all does): it reads configs/crm.wsdl.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <libxml/parser.h>

#include "kinds/soap_wsdl.h"
#include "util.h"

#define WSDL_HEAD                                                                                  \
    "<definitions xmlns='http://schemas.xmlsoap.org/wsdl/' "                                       \
    "xmlns:soap='http://schemas.xmlsoap.org/wsdl/soap/' "                                          \
    "xmlns:soap12='http://schemas.xmlsoap.org/wsdl/soap12/' xmlns:tns='urn:t' "                    \
    "targetNamespace='urn:t'>"

/* Writes text to a temporary file; returns its path (caller unlinks and frees). */
static char *temp_file(const char *text)
{
    char *path = xstrdup("/tmp/test_soap_wsdl.XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static int load_text(const char *text, const char *address, struct soap_wsdl *w, char *err,
                     size_t errlen)
{
    char *path = temp_file(text);
    int rc = soap_wsdl_load(path, address, w, err, errlen);
    unlink(path);
    free(path);
    return rc;
}

static void test_crm_example(void **state)
{
    struct soap_wsdl w;
    char err[512] = "";
    int rc = soap_wsdl_load("configs/crm.wsdl", NULL, &w, err, sizeof(err));
    assert_int_equal(rc, 0);
    assert_true(soap_wsdl_one_way(&w, "CustomerChanged"));
    assert_false(soap_wsdl_one_way(&w, "GetCustomer"));
    assert_false(soap_wsdl_one_way(&w, "GetCustomerResponse"));
    assert_int_equal(w.one_way.n, 1); /* operation and element share the name: listed once */
    struct buf b = {0};
    soap_wsdl_describe_one_way(&w, &b);
    assert_string_equal(b.data, "CustomerChanged");
    buf_free(&b);
    /* without wsdl_address the file is served byte for byte */
    assert_non_null(strstr(w.text, "<!--\n  crm.wsdl"));
    assert_non_null(strstr(w.text, "location=\"http://127.0.0.1:8082/ws\""));
    soap_wsdl_free(&w);
}

static void test_address_rewritten_in_both_versions(void **state)
{
    struct soap_wsdl w;
    char err[512] = "";
    const char *wsdl =
        WSDL_HEAD "<service name='S'><port name='p11' binding='tns:b'><soap:address "
                  "location='x'/></port><port name='p12' binding='tns:b2'><soap12:address "
                  "location='y'/></port><port name='http' binding='tns:b3'><other:address "
                  "xmlns:other='urn:other' location='z'/></port></service></definitions>";
    assert_int_equal(load_text(wsdl, "http://h:1/ws?a=1&b=2", &w, err, sizeof(err)), 0);
    assert_non_null(strstr(w.text, "<soap:address location=\"http://h:1/ws?a=1&amp;b=2\"/>"));
    assert_non_null(strstr(w.text, "<soap12:address location=\"http://h:1/ws?a=1&amp;b=2\"/>"));
    assert_non_null(strstr(w.text, "location=\"z\"")); /* not a SOAP port: untouched */
    assert_int_equal(w.one_way.n, 0);
    soap_wsdl_free(&w);
}

static void test_one_way_styles(void **state)
{
    /* A one-way operation whose element is named differently (document style),
     * one whose input part is a type (rpc style: the Body child is the
     * operation), a request-response, and a notification (output only) that is
     * not a request at all. */
    const char *wsdl =
        WSDL_HEAD "<message name='M1'><part name='p' element='tns:Notice'/></message><message "
                  "name='M2'><part name='a' type='xs:string'/></message><message name='M3'><part "
                  "name='p' element='tns:Ask'/></message><portType name='P'><operation "
                  "name='Notify'><input message='tns:M1'/></operation><operation "
                  "name='Ping'><input message='M2'/></operation><operation name='Ask'><input "
                  "message='tns:M3'/><output message='tns:M3'/></operation><operation "
                  "name='Tell'><output message='tns:M1'/></operation></portType></definitions>";
    struct soap_wsdl w;
    char err[512] = "";
    assert_int_equal(load_text(wsdl, NULL, &w, err, sizeof(err)), 0);
    assert_true(soap_wsdl_one_way(&w, "Notice"));
    assert_true(soap_wsdl_one_way(&w, "Notify"));
    assert_true(soap_wsdl_one_way(&w, "Ping"));
    assert_false(soap_wsdl_one_way(&w, "Ask"));
    assert_false(soap_wsdl_one_way(&w, "Tell"));
    assert_false(soap_wsdl_one_way(&w, "a"));
    struct buf b = {0};
    buf_puts(&b, "one-way: ");
    soap_wsdl_describe_one_way(&w, &b);
    assert_string_equal(b.data, "one-way: Notify, Notice, Ping");
    buf_free(&b);
    soap_wsdl_free(&w);
}

static void test_refusals(void **state)
{
    struct soap_wsdl w;
    char err[512] = "";
    assert_int_equal(
        load_text(
            "<!DOCTYPE d [<!ENTITY x SYSTEM 'file:///etc/passwd'>]><definitions>&x;</definitions>",
            NULL, &w, err, sizeof(err)),
        -1);
    assert_non_null(strstr(err, "not usable XML"));
    assert_non_null(strstr(err, "DOCTYPE"));
    assert_null(w.text);

    assert_int_equal(load_text("this is not XML", NULL, &w, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not usable XML"));

    assert_int_equal(load_text(WSDL_HEAD "</definitions>", "http://h/ws", &w, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "no soap:address or soap12:address"));

    assert_int_equal(soap_wsdl_load("/nonexistent/x.wsdl", NULL, &w, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "cannot read \"/nonexistent/x.wsdl\": No such file"));
}

static void expect_actions(const struct soap_wsdl *w, const char *name, const char *want)
{
    struct buf b = {0};
    buf_puts(&b, "");
    soap_wsdl_describe_actions(w, name, &b);
    assert_string_equal(b.data, want);
    buf_free(&b);
}

static void test_actions_crm(void **state)
{
    struct soap_wsdl w;
    char err[512] = "";
    assert_int_equal(soap_wsdl_load("configs/crm.wsdl", NULL, &w, err, sizeof(err)), 0);
    assert_int_equal(
        soap_wsdl_action_check(&w, "CustomerChanged", "urn:example:crm/CustomerChanged"),
        SOAP_WSDL_ACTION_MATCH);
    assert_int_equal(soap_wsdl_action_check(&w, "GetCustomer", "urn:example:crm/GetCustomer"),
                     SOAP_WSDL_ACTION_MATCH);
    assert_int_equal(soap_wsdl_action_check(&w, "CustomerChanged", "urn:example:crm/GetCustomer"),
                     SOAP_WSDL_ACTION_MISMATCH);
    assert_int_equal(soap_wsdl_action_check(&w, "GetCustomer", ""), SOAP_WSDL_ACTION_MISMATCH);
    /* case matters: actions are URIs */
    assert_int_equal(soap_wsdl_action_check(&w, "GetCustomer", "urn:example:crm/getcustomer"),
                     SOAP_WSDL_ACTION_MISMATCH);
    /* a response element or an unknown one is no request the WSDL describes */
    assert_int_equal(soap_wsdl_action_check(&w, "GetCustomerResponse", "x"),
                     SOAP_WSDL_ACTION_UNKNOWN);
    assert_int_equal(soap_wsdl_action_check(&w, "Nope", "x"), SOAP_WSDL_ACTION_UNKNOWN);
    expect_actions(&w, "GetCustomer", "\"urn:example:crm/GetCustomer\"");
    expect_actions(&w, "Nope", "");
    soap_wsdl_free(&w);
}

static void test_actions_styles(void **state)
{
    /* Notify: document style, its element named otherwise, soapAction on the
     * 1.1 binding and another on the 1.2 one; Ping: soap:operation without
     * soapAction, Pong: no soap:operation at all (both ""); Ask and Tell share
     * one input element (only the action tells them apart); the HTTP binding
     * declares no soapAction and is not SOAP. */
    const char *wsdl = WSDL_HEAD
        "<message name='M1'><part name='p' element='tns:Notice'/></message>"
        "<message name='M2'><part name='p' element='tns:Shared'/></message>"
        "<portType name='P'><operation name='Notify'><input message='tns:M1'/></operation>"
        "<operation name='Ping'><input message='tns:M2'/></operation>"
        "<operation name='Pong'><input message='tns:M2'/></operation>"
        "<operation name='Ask'><input message='tns:M2'/><output message='tns:M1'/></operation>"
        "<operation name='Tell'><input message='tns:M2'/></operation></portType>"
        "<binding name='B11' type='tns:P'><soap:binding style='document'/>"
        "<operation name='Notify'><soap:operation soapAction='urn:t:notify'/></operation>"
        "<operation name='Ping'><soap:operation style='document'/></operation>"
        "<operation name='Ask'><soap:operation soapAction='urn:t:ask'/></operation>"
        "<operation name='Tell'><soap:operation soapAction='urn:t:tell'/></operation></binding>"
        "<binding name='B12' type='tns:P'><soap12:binding style='document'/>"
        "<operation name='Notify'><soap12:operation soapAction='urn:t:notify12'/></operation>"
        "<operation name='Pong'/></binding>"
        "<binding name='H' type='tns:P' xmlns:http='http://schemas.xmlsoap.org/wsdl/http/'>"
        "<http:binding verb='POST'/><operation name='Notify'><http:operation "
        "location='/n'/></operation></binding></definitions>";
    struct soap_wsdl w;
    char err[512] = "";
    assert_int_equal(load_text(wsdl, NULL, &w, err, sizeof(err)), 0);
    for (int i = 0; i < 2; i++) {
        const char *name = i ? "Notice" : "Notify";
        assert_int_equal(soap_wsdl_action_check(&w, name, "urn:t:notify"), SOAP_WSDL_ACTION_MATCH);
        assert_int_equal(soap_wsdl_action_check(&w, name, "urn:t:notify12"),
                         SOAP_WSDL_ACTION_MATCH);
        assert_int_equal(soap_wsdl_action_check(&w, name, ""), SOAP_WSDL_ACTION_MISMATCH);
        expect_actions(&w, name, "\"urn:t:notify\" or \"urn:t:notify12\"");
    }
    assert_int_equal(soap_wsdl_action_check(&w, "Ping", ""), SOAP_WSDL_ACTION_MATCH);
    assert_int_equal(soap_wsdl_action_check(&w, "Ping", "Ping"), SOAP_WSDL_ACTION_MISMATCH);
    assert_int_equal(soap_wsdl_action_check(&w, "Pong", ""), SOAP_WSDL_ACTION_MATCH);
    assert_int_equal(soap_wsdl_action_check(&w, "Shared", "urn:t:ask"), SOAP_WSDL_ACTION_MATCH);
    assert_int_equal(soap_wsdl_action_check(&w, "Shared", "urn:t:tell"), SOAP_WSDL_ACTION_MATCH);
    assert_int_equal(soap_wsdl_action_check(&w, "Shared", ""), SOAP_WSDL_ACTION_MATCH);
    assert_int_equal(soap_wsdl_action_check(&w, "Shared", "urn:t:notify"),
                     SOAP_WSDL_ACTION_MISMATCH);
    expect_actions(&w, "Shared", "\"\" or \"urn:t:ask\" or \"urn:t:tell\"");
    soap_wsdl_free(&w);
}

/* WSDLs are trusted configuration and generated ones may declare a namespace
 * per imported schema: more than the 128 a request element may declare. */
static void test_many_namespaces(void **state)
{
    struct buf b = {0};
    buf_puts(&b, "<definitions xmlns='http://schemas.xmlsoap.org/wsdl/'");
    for (int i = 0; i < 300; i++)
        buf_printf(&b, " xmlns:s%d='urn:schema:%d'", i, i);
    buf_puts(&b, "/>");
    struct soap_wsdl w;
    char err[512] = "";
    int rc = load_text(b.data, NULL, &w, err, sizeof(err));
    buf_free(&b);
    assert_string_equal(err, "");
    assert_int_equal(rc, 0);
    soap_wsdl_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crm_example),
        cmocka_unit_test(test_address_rewritten_in_both_versions),
        cmocka_unit_test(test_one_way_styles),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_actions_crm),
        cmocka_unit_test(test_actions_styles),
        cmocka_unit_test(test_many_namespaces),
    };
    xmlInitParser();
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    xmlCleanupParser();
    return rc;
}
