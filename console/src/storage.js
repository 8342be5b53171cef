// GraphiQL keeps tabs and history in localStorage; keyed by account here, so that on a shared
// browser each staff member opens with their own examples and never another person's queries.
export function accountStorage(accountId) {
  const prefix = `ocis-console:${accountId}:`;
  const ownKeys = () => Object.keys(localStorage).filter((key) => key.startsWith(prefix));
  return {
    getItem: (key) => localStorage.getItem(prefix + key),
    setItem: (key, value) => localStorage.setItem(prefix + key, value),
    removeItem: (key) => localStorage.removeItem(prefix + key),
    get length() {
      return ownKeys().length;
    },
    clear() {
      ownKeys().forEach((key) => localStorage.removeItem(key));
    },
  };
}
