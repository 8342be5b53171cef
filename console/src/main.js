import 'graphiql/setup-workers/vite';
import 'graphiql/style.css';
import './console.css';
import { GraphiQL } from 'graphiql';
import { createElement } from 'react';
import { createRoot } from 'react-dom/client';
import { fetcher, postGraphQL, SIGN_IN_PATH } from './graphql.js';
import { examples, fallback } from './examples.json';
import { accountStorage } from './storage.js';

function tabsFor(roles) {
  const chosen = examples.filter((example) => example.roles.some((role) => roles.includes(role)));
  return (chosen.length ? chosen : [fallback]).map((example) => ({
    query: example.query,
    variables: JSON.stringify(example.variables, null, 2),
  }));
}

async function start() {
  const answer = await postGraphQL({ query: 'query ConsoleMe { me { id roles } }' });
  const me = answer?.data?.me;
  if (!me?.id || !me.roles) {
    window.location.assign(SIGN_IN_PATH);
    return;
  }
  const root = createRoot(document.getElementById('graphiql'));
  root.render(
    createElement(GraphiQL, {
      fetcher,
      defaultTabs: tabsFor(me.roles),
      storage: accountStorage(me.id),
      // Headers typed into the console stay in this tab; they may hold tokens.
      shouldPersistHeaders: false,
    }),
  );
}

start();
