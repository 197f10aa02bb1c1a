/** The page of graft ui: four tabs (Data, Train, Look, Compare) over the server's API and its live run events. */
import { renderCompare } from './compare.js';
import { renderData } from './data.js';
import { h, status } from './dom.js';
import { startEvents } from './live.js';
import { renderLook } from './look.js';
import { renderTrain } from './train.js';

const TABS = { data: renderData, train: renderTrain, look: renderLook, compare: renderCompare } as const;
type Tab = keyof typeof TABS;

/** Opens a tab (also from other tabs: "look at this run"). */
export async function openTab(tab: Tab, arg?: string): Promise<void> {
  for (const b of document.querySelectorAll('#tabs button')) b.classList.toggle('active', b.getAttribute('data-tab') === tab);
  const main = document.getElementById('main')!;
  main.replaceChildren();
  main.dataset.tab = tab;
  try {
    await TABS[tab](main, arg);
  } catch (e) {
    status((e as Error).message, true);
  }
}

const nav = document.getElementById('tabs')!;
for (const tab of Object.keys(TABS) as Tab[]) nav.append(h('button', { 'data-tab': tab, onclick: () => openTab(tab) }, tab[0]!.toUpperCase() + tab.slice(1)));
(window as unknown as { graftOpenTab: typeof openTab }).graftOpenTab = openTab;
startEvents();
void openTab('data');
