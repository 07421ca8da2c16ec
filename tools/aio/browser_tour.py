"""The all-in-one cloud's server operations through Horizon, in a browser.

Run by `aio.sh browser-tour [OUTDIR]`: headless Chromium (Debian's chromium
and chromedriver, nothing downloaded) logs in to Horizon, launches the test
guest with the Launch Instance wizard and walks it through the actions of the
Instances table. Every step is checked by the status Horizon shows and by the
marker lines the guest prints on its console, read on the instance's Log tab
(tools/guest-image/README.md). One screenshot per step goes to OUTDIR, plus
the page's HTML when the step failed. Prints a table `step | result |
seconds`; exits non-zero if a step failed. The server and the snapshot it
made are deleted at the end, also after a failure.
"""

import datetime
import os
import re
import subprocess
import sys
import time

import openstack
from selenium.common import exceptions as sel_exc
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

TOP = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
STATE = os.environ.get('AIO_STATE', '/var/lib/nova-altdriver-aio')
HORIZON = os.environ.get('AIO_HORIZON_URL', 'http://127.0.0.1:8080')
CLOUD = 'altdriver-aio'
PASSWORD = os.environ.get('AIO_PASSWORD', 'altdriver')
NETWORK = os.environ.get('AIO_NETWORK', 'aio-net')
WAIT = int(os.environ.get('TOUR_WAIT', '300'))
# the CLI tour's image, rescue image and flavor (tour.sh): reused if there
IMAGE = 'aio-tour-guest'
RESCUE = 'aio-tour-rescue'
FLAVOR = 'aio-tour-flavor'
SERVER = 'aio-browser-server'
SNAPSHOT = 'aio-browser-snapshot'

READY = re.compile(r'ALTDRIVER-READY bootcount=(\d+) .*')
TICK = re.compile(r'ALTDRIVER-TICK .*')
IPV4 = re.compile(r'\b\d+\.\d+\.\d+\.\d+\b')
NET = re.compile(r'ALTDRIVER-NET \S+ ip=(\S+) ')


def log(msg):
    print('[%s] %s' % (time.strftime('%H:%M:%S'), msg), file=sys.stderr,
          flush=True)


class StepFailed(Exception):
    pass


def wait_for(what, check, timeout=WAIT, interval=1):
    """Calls check() until it returns something true, which it returns."""
    end = time.time() + timeout
    while True:
        try:
            result = check()
        except sel_exc.StaleElementReferenceException:
            result = None  # Horizon replaced a table row while we read it
        if result:
            return result
        if time.time() > end:
            raise StepFailed('%s: not within %d s' % (what, timeout))
        time.sleep(interval)


class Browser(object):
    """Horizon pages as a user sees them: visible elements, real clicks."""

    def __init__(self):
        options = webdriver.ChromeOptions()
        options.binary_location = '/usr/bin/chromium'
        for arg in ('--headless=new', '--no-sandbox', '--disable-gpu',
                    '--window-size=1400,1000'):
            options.add_argument(arg)
        # a driver path given: Selenium Manager downloads nothing
        self.d = webdriver.Chrome(service=Service('/usr/bin/chromedriver'),
                                  options=options)
        self.d.set_page_load_timeout(120)

    def open(self, path):
        self.d.get(HORIZON + path)

    def visible(self, css, within=None):
        found = (within or self.d).find_elements(By.CSS_SELECTOR, css)
        return [e for e in found if e.is_displayed()]

    def wait_visible(self, css, what, timeout=30):
        return wait_for(what, lambda: self.visible(css), timeout, 0.3)[0]

    def click(self, element):
        self.d.execute_script('arguments[0].scrollIntoView({block: "center"})',
                              element)
        try:
            element.click()
        except sel_exc.ElementClickInterceptedException:
            # a fading tooltip or toast over it: click where the user aimed
            self.d.execute_script('arguments[0].click()', element)

    def choose(self, select_id, name):
        """Picks the option named NAME (labels may add a size) in a form."""
        select = self.d.find_element(By.ID, select_id)
        # textContent: Selenium's .text of a hidden option is empty
        labels = [o.get_attribute('textContent').strip()
                  for o in Select(select).options]
        label = next((x for x in labels
                      if x == name or x.startswith(name + ' ')), None)
        if label is None:
            raise StepFailed('%s offers no %s' % (select_id, name))
        if select.is_displayed():
            Select(select).select_by_visible_text(label)
            return
        # Horizon's themable select: a button menu over a hidden <select>
        menu = select.find_element(By.XPATH, './ancestor::div[contains('
                                   '@class, "themable-select")]')
        self.click(menu.find_element(By.CSS_SELECTOR, '.dropdown-toggle'))
        self.click(next(a for a in self.visible('.dropdown-menu a', menu)
                        if a.text.strip() == label))

    def submit_modal(self):
        modal = self.wait_visible('.modal', 'dialog')
        self.click(self.visible('.modal-footer [type=submit], '
                                '.modal-footer .btn-primary, '
                                '.modal-footer .btn-danger', modal)[-1])

    def reloaded(self, act):
        """Does ACT, which ends in a new page, and checks for errors."""
        page = self.d.find_element(By.TAG_NAME, 'html')

        def gone():
            try:
                return not page.tag_name
            except sel_exc.StaleElementReferenceException:
                return True
        act()
        wait_for('the next page', gone, 60, 0.3)
        errors = self.visible('.alert-danger')
        if errors:
            raise StepFailed('Horizon says: ' + errors[0].text.strip())

    def messages(self):
        return ' / '.join(e.text.strip() for e in self.visible('.alert')
                          if e.text.strip())


class Tour(object):

    def __init__(self, outdir):
        self.outdir = outdir
        self.cloud = openstack.connect(cloud=CLOUD)
        self.b = None
        self.server_id = None
        self.last_ready = None
        self.results = []

    # ------------------------------------------------------- the cloud
    def prepare(self):
        """The CLI tour's images and flavor; made as it makes them if gone."""
        c = self.cloud
        self.cleanup()
        missing = [n for n in (IMAGE, RESCUE) if not c.image.find_image(n)]
        if missing:
            build = os.path.join(TOP, 'tools', 'guest-image', 'build.sh')
            out = subprocess.check_output(['bash', build], text=True).strip()
            for name in missing:
                log('uploading %s' % name)
                disk = 'rescue.qcow2' if name == RESCUE else 'disk.qcow2'
                c.create_image(name, filename=os.path.join(out, disk),
                               disk_format='qcow2', container_format='bare',
                               visibility='public', wait=True)
        if not c.compute.find_flavor(FLAVOR):
            c.compute.create_flavor(name=FLAVOR, ram=256, vcpus=1, disk=1)

    def cleanup(self):
        c = self.cloud
        for server in c.compute.servers(name='^%s$' % SERVER):
            log('deleting server %s' % server.id)
            c.compute.delete_server(server)
            c.compute.wait_for_delete(server, wait=WAIT)
        for image in c.image.images(name=SNAPSHOT):
            log('deleting image %s' % image.id)
            c.image.delete_image(image)

    # ------------------------------------------------- the Instances page
    def row(self):
        self.b.open('/project/instances/')
        rows = self.b.d.find_elements(By.ID,
                                      'instances__row__' + self.server_id)
        return rows[0] if rows else None

    def row_cells(self):
        """{column title: text} of the server's row, None if it has none."""
        row = self.row()
        if row is None:
            return None
        titles = [th.text.strip() for th in self.b.d.find_elements(
            By.CSS_SELECTOR, '#instances tr.table_column_header th')]
        cells = row.find_elements(By.XPATH, './td')
        return dict(zip(titles, [td.text.strip() for td in cells]))

    def wait_status(self, *wanted):
        state = {}

        def reached():
            state.update(self.row_cells() or {'Status': '(no row)'})
            if state['Status'] == 'Error':
                raise StepFailed('the instance went to Error: %s'
                                 % self.b.messages())
            return state['Status'] in wanted and state.get('Task') == 'None'
        try:
            wait_for('status %s' % ' or '.join(wanted), reached)
        except StepFailed as e:
            raise StepFailed('%s (last: status %s, task %s)'
                             % (e, state.get('Status'), state.get('Task')))
        log('status %s' % state['Status'])

    def action(self, name, fill=None):
        """Runs a row action (from the row's menu) to the next page.

        Confirms it if Horizon asks; an action that opens a form has the
        form filled by FILL and submitted.
        """
        row = self.row()
        if row is None:
            raise StepFailed('no row for the instance')
        found = self.b.d.find_elements(
            By.ID, 'instances__row_%s__action_%s' % (self.server_id, name))
        if not found:
            raise StepFailed('the row offers no action %s' % name)
        button = found[0]
        # Horizon asks before it does anything harmful
        confirm = 'btn-danger' in button.get_attribute('class')

        def run():
            if not button.is_displayed():
                self.b.click(row.find_element(By.CSS_SELECTOR,
                                              '.dropdown-toggle'))
            log('action: %s' % button.text.strip())
            self.b.click(button)
            if fill:
                self.b.wait_visible('.modal form', 'the %s form' % name)
                fill()
            if fill or confirm:
                self.b.submit_modal()
        self.b.reloaded(run)

    # ------------------------------------------------------ the Log tab
    def console(self):
        """The console log's last 500 lines, as the Log tab shows them."""
        log_tab = '/project/instances/%s/?tab=instance_details__log'
        if 'instance_details__log' not in self.b.d.current_url:
            self.b.open(log_tab % self.server_id)
        form = self.b.wait_visible('#tail_length', 'the Log tab')
        length = form.find_element(By.NAME, 'length')
        length.clear()
        length.send_keys('500')
        pre = self.b.d.find_element(By.CSS_SELECTOR, 'pre.logs')
        self.b.d.execute_script('arguments[0].textContent = ""', pre)
        self.b.click(form.find_element(By.CSS_SELECTOR, 'button'))
        # the Go button fetches the log with jQuery (empty while booting)
        wait_for('the log', lambda: self.b.d.execute_script(
            'return jQuery.active === 0'), 30, 0.3)
        # the newest lines into view, for the step's screenshot
        self.b.d.execute_script(
            'window.scrollTo(0, document.body.scrollHeight)')
        return pre.text.replace('\r', '').splitlines()

    def last(self, regex, lines=None):
        """The last console line matching REGEX (in LINES if given)."""
        if lines is None:
            lines = self.console()
        return next((x for x in reversed(lines) if regex.search(x)), None)

    def wait_console(self, pattern):
        regex = re.compile(pattern)
        line = wait_for('console line /%s/' % pattern,
                        lambda: self.last(regex))
        log('console: %s' % line)

    def wait_boot(self, count):
        """A new ALTDRIVER-READY line, with boot count COUNT."""
        def new_ready():
            line = self.last(READY)
            return line if line and line != self.last_ready else None
        line = wait_for('a new ALTDRIVER-READY line', new_ready)
        self.last_ready = line
        log('console: %s' % line)
        if READY.search(line).group(1) != str(count):
            raise StepFailed('expected bootcount=%d: %s' % (count, line))

    def ticks(self, advancing):
        before = self.last(TICK)
        time.sleep(4)
        lines = self.console()
        after = self.last(TICK, lines)
        if (before != after) != advancing or not after:
            raise StepFailed('the guest should %s, its ticks: %s / %s' % (
                'run' if advancing else 'stand still', before, after))
        if advancing and self.last(READY, lines) != self.last_ready:
            raise StepFailed('the guest booted again')
        log('console: %s' % after)

    def network_ok(self):
        """The guest's latest boot configured the address Horizon shows for
        it (from the config drive) and the host reaches it over the bridge.
        """
        shown = IPV4.findall((self.row_cells() or {}).get('IP Address', ''))
        lines = self.console()
        boots = [i for i, x in enumerate(lines) if 'ALTDRIVER-BOOT ' in x]
        net = self.last(NET, lines[boots[-1] if boots else 0:])
        if not shown or not net or ' ip=%s ' % shown[0] not in net:
            raise StepFailed('Horizon shows address %s, the guest\'s last '
                             'boot configured: %s' % (shown, net))
        for _ in range(15):
            if subprocess.run(['ping', '-c', '1', '-W', '2', shown[0]],
                              stdout=subprocess.DEVNULL).returncode == 0:
                log('guest answers ping at %s' % shown[0])
                return
        raise StepFailed('no answer to ping from %s' % shown[0])

    # ------------------------------------------------------------- steps
    def login(self):
        self.b = Browser()
        self.b.open('/auth/login/')
        self.b.wait_visible('#id_username', 'the login form').send_keys(
            'admin')
        self.b.d.find_element(By.ID, 'id_password').send_keys(PASSWORD)
        for domain in self.b.visible('#id_domain'):
            domain.clear()
            domain.send_keys('Default')
        self.b.click(self.b.d.find_element(By.ID, 'loginBtn'))
        wait_for('logged in', lambda: '/auth/login' not in
                 self.b.d.current_url and self.b.visible('.navbar'), 60, 0.5)

    def transfer(self, name):
        """Moves NAME into the wizard's allocated table, if not there."""
        step = self.b.visible('.wizard .step')[0]
        cell = ('//td[normalize-space(.)="%s"]/ancestor::tr[1]'
                '//td[contains(@class, "actions_column")]//button' % name)
        for where in ('transfer-allocated', 'transfer-available'):
            buttons = [e for e in step.find_elements(
                By.XPATH, './/div[contains(@class, "%s")]%s' % (where, cell))
                if e.is_displayed()]
            if buttons and where == 'transfer-available':
                self.b.click(buttons[0])
            if buttons:
                return True
        return False

    def wizard_step(self, title):
        self.b.click(self.b.d.find_element(
            By.XPATH, '//div[contains(@class, "wizard-nav")]//a[span[normalize'
            '-space(.)="%s"]]' % title))
        time.sleep(0.5)

    def fill_wizard(self, attempts=2):
        """Details, Source, Flavor, Networks of the Launch Instance wizard.

        Now and then the wizard's network tables stay empty although
        Horizon fetched the network: the wizard is then opened again.
        """
        self.b.open('/project/instances/')
        self.b.click(self.b.d.find_element(By.ID,
                                           'instances__action_launch-ng'))
        self.b.wait_visible('.wizard #name', 'the wizard').send_keys(SERVER)
        self.wizard_step('Source')
        wait_for('image %s offered' % IMAGE, lambda: self.transfer(IMAGE), 30)
        self.wizard_step('Flavor')
        wait_for('flavor %s offered' % FLAVOR, lambda: self.transfer(FLAVOR),
                 30)
        self.wizard_step('Networks')
        try:
            wait_for('network %s offered' % NETWORK,
                     lambda: self.transfer(NETWORK), 20)
        except StepFailed:
            if attempts == 1:
                raise
            log('the wizard offers no network: opening it again')
            self.b.d.save_screenshot(os.path.join(
                self.outdir, 'wizard-without-networks.png'))
            self.b.click(self.b.wait_visible(
                'button.pull-left[ng-click="cancel()"]', 'the Cancel button'))
            wait_for('wizard closes', lambda: not self.b.visible('.wizard'),
                     30, 0.5)
            self.fill_wizard(attempts - 1)

    def launch(self):
        self.fill_wizard()
        self.wizard_step('Configuration')
        config_drive = self.b.d.find_elements(By.ID, 'config-drive')
        if config_drive and not config_drive[0].is_selected():
            self.b.click(self.b.d.find_element(
                By.CSS_SELECTOR, 'label[for=config-drive]'))
        self.b.click(self.b.wait_visible('.wizard .finish:not([disabled])',
                                         'the Launch Instance button'))
        wait_for('wizard closes', lambda: not self.b.visible('.wizard'), 60,
                 0.5)

        def row_id():
            self.b.open('/project/instances/')
            rows = self.b.d.find_elements(
                By.CSS_SELECTOR, 'tr[data-display="%s"]' % SERVER)
            return rows and rows[0].get_attribute('data-object-id')
        self.server_id = wait_for('the new instance listed', row_id, 60)
        log('instance %s' % self.server_id)
        self.wait_status('Active')
        self.wait_boot(1)
        if config_drive:
            self.wait_console('ALTDRIVER-CONFIGDRIVE')
        self.network_ok()

    def stop(self):
        self.action('stop')
        self.wait_status('Shutoff')
        self.wait_console('ALTDRIVER-ACPI-POWER')

    def power_on(self, action, count):
        self.action(action)
        self.wait_status('Active')
        self.wait_boot(count)
        self.network_ok()

    def pause(self):
        self.action('pause')
        self.wait_status('Paused')
        self.ticks(advancing=False)

    def suspend(self):
        self.action('suspend')
        self.wait_status('Suspended')

    def resume(self, action):
        self.action(action)
        self.wait_status('Active')
        self.ticks(advancing=True)

    def rescue(self):
        self.action('rescue', lambda: self.b.choose('id_image', RESCUE))
        self.wait_status('Rescue')
        self.wait_console(r'ALTDRIVER-SELF \w+ role=rescue')
        self.wait_console(r'ALTDRIVER-OTHER \w+ marker=')
        self.wait_console(r'ALTDRIVER-RESCUE-WROTE \w+')
        self.wait_boot(1)  # the rescue disk's own first boot

    def unrescue(self):
        self.power_on('unrescue', 5)
        self.wait_console('ALTDRIVER-RESCUED rescued-by-rescue-image')

    def snapshot(self):
        def name():
            field = self.b.d.find_element(By.ID, 'id_name')
            field.clear()
            field.send_keys(SNAPSHOT)
        self.action('snapshot', name)
        self.wait_status('Active')  # nova has uploaded the snapshot

        def active():
            self.b.open('/project/images/')
            rows = self.b.d.find_elements(
                By.XPATH, '//tr[.//a[normalize-space(.)="%s"]]' % SNAPSHOT)
            return rows and 'Active' in rows[0].text
        wait_for('snapshot %s Active on the Images page' % SNAPSHOT, active)

    def shelve(self):
        self.action('shelve')
        # Horizon offers Unshelve only to offloaded servers: nova offloads
        # shelved ones after the all-in-one's shelved_offload_time (60 s)
        self.wait_status('Shelved', 'Shelved Offloaded')
        self.wait_status('Shelved Offloaded')

    def rebuild(self):
        self.action('rebuild', lambda: self.b.choose('id_image', IMAGE))
        self.wait_status('Active')
        self.wait_boot(1)  # a new disk: counting starts over
        self.network_ok()

    def delete(self):
        self.action('delete')
        wait_for('the instance leaves the table', lambda: self.row() is None)
        self.server_id = None

    # ------------------------------------------------------------ runner
    def steps(self):
        return [
            ('log in', self.login),
            ('launch instance (wizard)', self.launch),
            ('shut off', self.stop),
            ('start', lambda: self.power_on('start', 2)),
            ('soft reboot', lambda: self.power_on('soft_reboot', 3)),
            ('hard reboot', lambda: self.power_on('reboot', 4)),
            ('pause', self.pause),
            ('resume (from pause)', lambda: self.resume('pause')),
            ('suspend', self.suspend),
            ('resume (from suspend)', lambda: self.resume('suspend')),
            ('rescue (rescue image)', self.rescue),
            ('unrescue', self.unrescue),
            ('create snapshot', self.snapshot),
            ('shelve (offloaded by nova)', self.shelve),
            ('unshelve', lambda: self.power_on('shelve', 6)),
            ('rebuild', self.rebuild),
            ('delete', self.delete),
        ]

    def run_step(self, number, name, function):
        log('== %s' % name)
        t0 = time.time()
        base = os.path.join(self.outdir, '%02d-%s' % (
            number, re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')))
        try:
            function()
            result = 'ok'
        except Exception as e:
            result = 'FAILED'
            # Selenium's messages end in the driver's stack trace
            msg = getattr(e, 'msg', None) or str(e)
            log('!! %s FAILED: %s: %s' % (name, type(e).__name__, msg))
            if self.b and self.b.messages():
                log('!! Horizon says: %s' % self.b.messages())
        if self.b:
            try:
                self.b.d.save_screenshot(base + '.png')
                if result != 'ok':
                    with open(base + '.html', 'w') as f:
                        f.write(self.b.d.page_source)
            except sel_exc.WebDriverException as e:
                log('no screenshot: %s' % e)
        self.results.append((name, result, time.time() - t0))
        return result == 'ok'

    def run(self):
        t0 = time.time()
        steps = self.steps()
        try:
            self.prepare()
            for number, (name, function) in enumerate(steps, 1):
                if not self.run_step(number, name, function):
                    break  # the server is in no state for the next action
        finally:
            if self.b:
                self.b.d.quit()
            self.cleanup()
        done = [r[0] for r in self.results]
        skipped = [(n, 'skipped', 0) for n, _ in steps if n not in done]
        print('\n%-34s | %-7s | %s' % ('step', 'result', 'seconds'))
        print('-' * 35 + '+' + '-' * 9 + '+' + '-' * 8)
        for name, result, seconds in self.results + skipped:
            print('%-34s | %-7s | %d' % (name, result, seconds))
        ok = not skipped and all(r[1] == 'ok' for r in self.results)
        print('browser tour: %d s, %s; screenshots in %s' % (
            time.time() - t0, 'all steps passed' if ok else 'FAILURES',
            self.outdir))
        return 0 if ok else 1


def main():
    os.environ.setdefault('OS_CLIENT_CONFIG_FILE',
                          os.path.join(STATE, 'clouds.yaml'))
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        STATE, 'browser-tour',
        datetime.datetime.now().strftime('%Y%m%d-%H%M%S'))
    os.makedirs(outdir, exist_ok=True)
    print(outdir, flush=True)
    return Tour(outdir).run()


if __name__ == '__main__':
    sys.exit(main())
