// Entry of the ES module build: the same single tracker as the classic script (a page loading both gets one).
import "./index.js";

const Clickstream = globalThis.Clickstream;
export default Clickstream;
export const { init, track, setUser, setConsent, flush, recommend, stats } = Clickstream;
