// Talks to /graphql the way the CSRF rule asks of a cookie-authenticated caller: a JSON POST from
// this origin (the browser adds Origin), with the session cookie and nothing else.
export const GRAPHQL_PATH = '/graphql';
export const SIGN_IN_PATH = '/console/sign-in?next=%2Fconsole';

// The GraphQL-over-HTTP media type first; older servers answer application/json.
const ACCEPT = 'application/graphql-response+json, application/json';

export async function postGraphQL(params, headers = {}) {
  const response = await fetch(GRAPHQL_PATH, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { ...headers, 'Content-Type': 'application/json', Accept: ACCEPT },
    body: JSON.stringify(params),
  });
  if (response.status === 401) {
    window.location.assign(SIGN_IN_PATH);
  }
  const type = response.headers.get('content-type') || '';
  if (type.startsWith('application/graphql-response+json') || type.startsWith('application/json')) {
    // Both media types carry the same GraphQL response; under the newer one a 4xx still holds it.
    return response.json();
  }
  return { errors: [{ message: `HTTP ${response.status}: ${(await response.text()).slice(0, 200)}` }] };
}

export function fetcher(params, options) {
  return postGraphQL(params, options?.headers ?? {});
}
