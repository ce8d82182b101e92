// A short, readable summary of a browser's User-Agent ("Chrome on Windows") for the sessions and activity lists.

export function describeAgent(agent) {
  if (!agent) return "Unknown device";
  const browser = /Edg\//.test(agent) ? "Edge" : /Firefox\//.test(agent) ? "Firefox"
    : /Chrom(e|ium)\//.test(agent) ? "Chrome" : /Safari\//.test(agent) ? "Safari" : "";
  const system = /Windows/.test(agent) ? "Windows" : /Android/.test(agent) ? "Android"
    : /iPhone|iPad/.test(agent) ? "iOS" : /Mac OS X/.test(agent) ? "macOS" : /Linux/.test(agent) ? "Linux" : "";
  // Neither a known browser nor a system (a script, an app): say so rather than guess.
  if (!browser) return system ? `A browser on ${system}` : "Unknown browser or app";
  return system ? `${browser} on ${system}` : browser;
}
