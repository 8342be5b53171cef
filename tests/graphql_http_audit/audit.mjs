// Runs graphql-http's GraphQL-over-HTTP server audit against the URL given as the only
// argument and prints one JSON array of {id, name, status, reason} on standard output.
import { auditServer } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node audit.mjs URL');
  process.exit(2);
}

const results = await auditServer({ url });
const summary = [];
for (const result of results) {
  const entry = { id: result.id, name: result.name, status: result.status };
  if (result.status !== 'ok') {
    entry.reason = result.reason;
    entry.httpStatus = result.response.status;
    entry.contentType = result.response.headers.get('content-type');
  }
  summary.push(entry);
}
process.stdout.write(JSON.stringify(summary) + '\n');
