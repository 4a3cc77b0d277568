// Apollo Client's own persisted-queries link against the gateway (run by
// tests/gateway/test_apollo_client.py). Usage: node apq.mjs <graphql url> <POST|GET>
//
// Two clients, each with a fresh link, run the same query: the first goes through the
// whole handshake (hash alone -> PersistedQueryNotFound -> hash and query), the second
// is answered from the hash alone. Every HTTP request the link made is recorded and
// printed as JSON with the results, for the test to check.
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client/core/index.js";
import { createPersistedQueryLink } from "@apollo/client/link/persisted-queries/index.js";
import { sha256 } from "crypto-hash";

const [url, method] = process.argv.slice(2);
const requests = [];

async function recordingFetch(input, init) {
  const target = new URL(String(input));
  const body = init.body ? JSON.parse(init.body) : null;
  const extensions = body ? body.extensions : JSON.parse(target.searchParams.get("extensions"));
  const response = await fetch(input, init);
  requests.push({
    method: init.method ?? "GET",
    hasQuery: Boolean(body ? body.query : target.searchParams.get("query")),
    sha256Hash: extensions?.persistedQuery?.sha256Hash ?? null,
    status: response.status,
    cacheControl: response.headers.get("cache-control"),
  });
  return response;
}

function client() {
  const persisted = createPersistedQueryLink({ sha256, useGETForHashedQueries: method === "GET" });
  return new ApolloClient({
    link: persisted.concat(new HttpLink({ uri: url, fetch: recordingFetch })),
    cache: new InMemoryCache(),
  });
}

const USER = gql`
  query UserName($key: UserKey!) {
    user(key: $key) {
      uuid
      name
    }
  }
`;

const results = [];
for (const _ of [1, 2]) {
  const { data, errors } = await client().query({
    query: USER,
    variables: { key: { uuid: "u-ada" } },
    fetchPolicy: "no-cache",
  });
  results.push({ data, errors: errors ?? null });
}
console.log(JSON.stringify({ requests, results }));
